"""TF1 RNN cells' weights for Keras 3 layers: keras_rnn_weights(read, scope, cell, forget_bias)."""

import numpy as np

# What Keras 3's LSTM has no term for: refused, rather than a model that computes another thing.
NOT_IN_KERAS = {
    "w_f_diag": "peepholes (use_peepholes=True)",
    "projection/kernel": "a projection (num_proj)",
}


def keras_rnn_weights(read, scope, cell, forget_bias=1.0):
    """The weights of a TF1 cell, for set_weights of Keras 3's GRU(reset_after=False) or LSTM.

    read(name) returns a TF1 variable's value, for example
    tf.train.load_checkpoint(path).get_tensor; scope is the cell's variable scope
    (rnn/multi_rnn_cell/cell_1/lstm_cell, say); cell is "GRUCell", "LSTMCell" or
    "BasicLSTMCell"; forget_bias is the one the TF1 LSTM cell was built with.
    """

    def variable(name):
        """The value of scope/name, or None if the checkpoint has none."""
        try:
            return read(scope + "/" + name)
        except Exception:  # Whatever read raises for a name it lacks.
            return None

    def needed(name):
        value = variable(name)
        if value is None:
            raise ValueError(f"no {scope}/{name} to read: is {scope} the scope of the {cell}?")
        return value

    if cell == "GRUCell":
        # TF1 keeps the two gates in one kernel, columns [r, u], and the candidate
        # apart; Keras keeps the three blocks in one, columns [z, r, h], z being TF1's u.
        r, u = np.split(needed("gates/kernel"), 2, axis=1)
        r_bias, u_bias = np.split(needed("gates/bias"), 2)
        kernel = np.concatenate([u, r, needed("candidate/kernel")], axis=1)
        bias = np.concatenate([u_bias, r_bias, needed("candidate/bias")])
        units = bias.size // 3
    elif cell in ("LSTMCell", "BasicLSTMCell"):
        for name, what in NOT_IN_KERAS.items():
            if variable(name) is not None:
                raise ValueError(f"{scope} has {what}, which Keras 3's LSTM does not compute")
        # TF1's columns are [i, j, f, o], j being the candidate; Keras's [i, f, c, o].
        i, j, f, o = np.split(needed("kernel"), 4, axis=1)
        i_bias, j_bias, f_bias, o_bias = np.split(needed("bias"), 4)
        kernel = np.concatenate([i, f, j, o], axis=1)
        # TF1 adds forget_bias to the forget gate as it runs; Keras has no such
        # term, so it goes into the bias. Left out, the logits move, without an error.
        bias = np.concatenate([i_bias, f_bias + forget_bias, j_bias, o_bias])
        units = bias.size // 4
    else:
        raise ValueError(f"unknown cell {cell!r}: GRUCell, LSTMCell or BasicLSTMCell")
    # TF1 multiplies [x; h] by one kernel: its first rows are Keras's kernel (for
    # the input x), its last `units` rows the recurrent kernel (for the state h).
    return [kernel[:-units], kernel[-units:], bias]
