"""A batch size baked into the graph (the post's sequence_length=[10] * 32)."""

import collections

import tensorflow as tf

# Where a constant is read as a shape that starts with the batch size, and
# where it is read as an index or an axis, never a batch of anything.
AS_SHAPE = {("ConcatV2", 0), ("Fill", 0), ("Reshape", 1), ("BroadcastTo", 1)}
# (A tf.shape() of a batch whose shape was known, folded into a constant, sliced.)
AS_SHAPE |= {("StridedSlice", 0), ("Slice", 0)}


AS_INDEX = {"StridedSlice", "Slice", "ExpandDims", "Transpose", "Tile", "Pad", "Range"}


AS_INDEX |= {"Sum", "Mean", "Max", "Min", "Prod", "All", "Any", "GatherV2", "ConcatV2", "Split"}


def batch_constants(cut, size):
    """The model's constants that hold the batch size: (name, kind, value).

    kind "rows": `size` rows of one value (sequence lengths, a zero state);
    kind "shape": a shape whose first element is `size`, read as one.
    """
    if size == 1:
        return []  # A 1 is everywhere (axes, strides, ranks): nothing tells it apart.
    found = []
    for name in sorted(cut.model):
        node = cut.nodes[name]
        if node.op != "Const":
            continue
        value = tf.make_ndarray(node.attr["value"].tensor)
        read = {(cut.nodes[reader].op, index) for reader, index in cut.readers[name]}
        read -= {("Equal", 0), ("Equal", 1), ("Assert", 2), ("Assert", 4)}
        shape = value.ndim == 1 and value.dtype.kind in "iu" and value.size and value[0] == size
        rows = value.ndim and value.shape[0] == size and (value == value.flat[0]).all()
        if shape and read <= AS_SHAPE:
            found.append((name, "shape", value))
        elif rows and not any(op in AS_INDEX and index > 0 for op, index in read):
            found.append((name, "rows", value))
    return found


def rows_of(cut, size):
    """The model's constants of `size` rows, whatever they hold (unequal lengths, say)."""
    return [
        name
        for name in sorted(cut.model)
        if cut.nodes[name].op == "Const"
        and cut.nodes[name].attr["value"].tensor.tensor_shape.dim[:1]
        and cut.nodes[name].attr["value"].tensor.tensor_shape.dim[0].size == size
    ]


def candidate_sizes(cut):
    """Lengths of the model's integer vector constants, most frequent first."""
    sizes = collections.Counter()
    for name in cut.model:
        if cut.nodes[name].op != "Const":
            continue  # (Reading attr["value"] of another node would add it.)
        tensor = cut.nodes[name].attr["value"].tensor
        dims = tensor.tensor_shape.dim
        if (
            tensor.dtype in (tf.int32.as_datatype_enum, tf.int64.as_datatype_enum)
            and len(dims) == 1
        ):
            sizes[dims[0].size] += dims[0].size > 1
    return [size for size, count in sizes.most_common() if count]
