"""Write seq2seq_export/: a TF1 seq2seq model fed sentences through a tf.data pipeline.

Usage: python3 examples/make_seq2seq_export.py

The kind of inference graph tensorflow/nmt exported: a string placeholder of
sentences and a batch size feed a pipeline that splits each sentence into
words, looks them up in a vocabulary table (in the dataset's map()) and pads
them into batches; an initializable iterator reads it. After the iterator, a
GRU encoder, a greedy GRU decoder that looks up its start and end ids in the
target vocabulary, and a reverse table that turns its ids back into words.
Trained for a few seconds to translate lowercase words into uppercase ones.
Exported with simple_save, the vocabularies as assets and the tables'
initializer as its legacy_init_op; it serves only through its iterator.
Writes seq2seq_vocab/ (the vocabulary files) and seq2seq_export/.
"""

import os
import sys
import warnings

# --help, or an argument it does not take: answered before the imports, which take seconds.
if sys.argv[1:] in (["-h"], ["--help"]):
    print(__doc__)
    sys.exit()
if sys.argv[1:]:
    sys.exit(f"usage: python3 {sys.argv[0]}: it takes no arguments (--help says more)")

# What it writes, checked before TensorFlow's import, which takes seconds.
for output in ("seq2seq_vocab", "seq2seq_export"):
    if os.path.lexists(output):
        sys.exit(f"{output} already exists here: run this in a folder without it.")
if not os.access(".", os.W_OK):
    sys.exit(f"Cannot write in {os.getcwd()}: run this program in a folder you can write to.")

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # The TF1 layers are in tf-keras.
import numpy as np

try:
    import tensorflow.compat.v1 as tf
except ImportError:  # TensorFlow 1.x before 1.13.
    import tensorflow as tf
tf.logging.set_verbosity(tf.logging.ERROR)
warnings.filterwarnings("ignore", r"`tf\.", UserWarning)  # "... is deprecated"
if hasattr(tf, "disable_v2_behavior"):
    tf.disable_v2_behavior()
# The tables: tf.lookup from TensorFlow 1.14 on, tf.contrib.lookup before.
lookup = getattr(tf, "lookup", None) or tf.contrib.lookup
HashTable = getattr(lookup, "StaticHashTable", None) or lookup.HashTable

WORDS = ["apple", "bird", "cat", "dog", "egg", "fish", "goat", "hat", "ice", "jam", "kite", "lamp"]
SPECIAL = ["<unk>", "<s>", "</s>"]  # Ids 0, 1 and 2 in both vocabularies.
UNK, START, END = 0, 1, 2
UNITS, MAX_OUT = 32, 7


def vocabulary_table(path, reverse=False):
    """A table of a vocabulary file's words to their line numbers, or back."""
    word, number = lookup.TextFileIndex.WHOLE_LINE, lookup.TextFileIndex.LINE_NUMBER
    if reverse:
        init = lookup.TextFileInitializer(path, tf.int64, number, tf.string, word)
        return HashTable(init, "<unk>")
    return HashTable(lookup.TextFileInitializer(path, tf.string, word, tf.int64, number), UNK)


os.mkdir("seq2seq_vocab")
for name, words in (("source.txt", WORDS), ("target.txt", [w.upper() for w in WORDS])):
    with open(os.path.join("seq2seq_vocab", name), "w") as f:
        f.write("\n".join(SPECIAL + words) + "\n")
rng = np.random.RandomState(0)
sentences = [" ".join(rng.choice(WORDS, rng.randint(2, 6))) for _ in range(256)]

tf.set_random_seed(0)
source = vocabulary_table("seq2seq_vocab/source.txt")
target = vocabulary_table("seq2seq_vocab/target.txt")
target_words = vocabulary_table("seq2seq_vocab/target.txt", reverse=True)

# The pipeline, as nmt's inference graph had it: split, look up, pad with the end id.
src_ph = tf.placeholder(tf.string, [None], name="src")
batch_size_ph = tf.placeholder(tf.int64, [], name="batch_size")
end_id = tf.cast(source.lookup(tf.constant("</s>")), tf.int32)
dataset = tf.data.Dataset.from_tensor_slices(src_ph)
dataset = dataset.map(lambda sentence: tf.string_split([sentence]).values)
dataset = dataset.map(lambda words: tf.cast(source.lookup(words), tf.int32))
dataset = dataset.map(lambda ids: (ids, tf.size(ids)))
dataset = dataset.padded_batch(batch_size_ph, ([None], []), padding_values=(end_id, 0))
iterator = dataset.make_initializable_iterator()
src_ids, src_length = iterator.get_next()

# The model: a GRU encoder, and a GRU decoder that starts from its last state.
embedding = tf.get_variable("embedding", [len(SPECIAL + WORDS), UNITS])
encoder = tf.nn.rnn_cell.GRUCell(UNITS, name="encoder")
_, state = tf.nn.dynamic_rnn(
    encoder, tf.nn.embedding_lookup(embedding, src_ids), src_length, dtype=tf.float32
)
decoder = tf.nn.rnn_cell.GRUCell(UNITS, name="decoder")
projection = tf.layers.Dense(len(SPECIAL + WORDS), name="projection")
# Training: teacher forcing, the target words fed after <s>.
target_in = tf.placeholder(tf.int32, [None, None], name="target_in")
target_out = tf.placeholder(tf.int32, [None, None], name="target_out")
decoded, _ = tf.nn.dynamic_rnn(
    decoder, tf.nn.embedding_lookup(embedding, target_in), initial_state=state
)
loss = tf.losses.sparse_softmax_cross_entropy(target_out, projection(decoded))
train = tf.train.AdamOptimizer(1e-2).minimize(loss)
# Inference: greedy, from the target vocabulary's <s>, MAX_OUT words at most.
token = tf.fill(tf.shape(src_length), tf.cast(target.lookup(tf.constant("<s>")), tf.int32))
ids, decoder_state = [], state
for _ in range(MAX_OUT):
    output, decoder_state = decoder(tf.nn.embedding_lookup(embedding, token), decoder_state)
    token = tf.argmax(projection(output), axis=1, output_type=tf.int32)
    ids.append(token)
translations = target_words.lookup(tf.cast(tf.stack(ids, axis=1), tf.int64))


def teacher_arrays(batch):
    """The target words after <s>, and before </s>, as ids padded with </s>."""
    length = max(len(s.split()) for s in batch) + 1
    inputs = np.full((len(batch), length), END, np.int32)
    outputs = np.full((len(batch), length), END, np.int32)
    for row, sentence in enumerate(batch):
        numbers = [WORDS.index(w) + len(SPECIAL) for w in sentence.split()]
        inputs[row, : len(numbers) + 1] = [START] + numbers
        outputs[row, : len(numbers)] = numbers
    return inputs, outputs


# One op for both: the tables filled for training, and by the export's loader.
tables_initializer = tf.tables_initializer()
with tf.Session() as sess:
    sess.run([tf.global_variables_initializer(), tables_initializer])
    for step in range(150):
        batch = sentences[(step * 32) % 256 :][:32]
        tin, tout = teacher_arrays(batch)
        sess.run(iterator.initializer, {src_ph: batch, batch_size_ph: len(batch)})
        sess.run(train, {target_in: tin, target_out: tout})
    tf.saved_model.simple_save(
        sess,
        "seq2seq_export",
        {"src": src_ph, "batch_size": batch_size_ph},
        {"translations": translations},
        legacy_init_op=tables_initializer,
    )
    shown = ["bird cat dog", "egg", "kite lamp apple hat"]
    sess.run(iterator.initializer, {src_ph: shown, batch_size_ph: len(shown)})
    words = sess.run(translations)
print("Wrote seq2seq_vocab/ and seq2seq_export/. Through its iterator:")
for sentence, row in zip(shown, words):
    print("  {} -> {}".format(sentence, " ".join(w.decode() for w in row)))
