"""The parts of examples/upgrade_export.py, one file each, in the order an upgrade uses them.

    paths.py       which kind OLD is and where its files are, before TensorFlow's import
    old.py         reading OLD: an export, a checkpoint or a frozen graph, never run here
    outputs.py     the model's outputs, where OLD has no signature to say them
    cut.py         where the input pipeline meets the model: what NEW keeps and takes
    pipeline.py    the pipeline's work on each element, carried over to run on a request
    batch_size.py  a batch size baked into the graph, taken from the input instead
    new.py         writing NEW: the kept nodes, their variables, a signature
    check.py       running OLD and NEW on the same sample batch, and comparing

This file holds what they share, and imports no TensorFlow.
"""


class Refusal(Exception):
    """Why nothing is written, in one line."""


def split_ref(ref):
    """'node:1', 'node' or '^node' (a control input) -> (node, 1 or 0, is_control)."""
    node, _, index = ref.lstrip("^").partition(":")
    return node, int(index or 0), ref.startswith("^")


def tensor_ref(ref):
    """'node' or 'node:1' (an input of a node) -> 'node:0' or 'node:1' (a tensor name)."""
    node, index, _ = split_ref(ref)
    return f"{node}:{index}"


# Where a model reads its batches: an iterator's get_next, or a queue's
# dequeue of many elements (what tf.train.batch and its kin give).
GET_NEXT = {"IteratorGetNext", "IteratorGetNextSync"}
DEQUEUE = {"QueueDequeueMany", "QueueDequeueManyV2", "QueueDequeueUpTo", "QueueDequeueUpToV2"}
MAKE_ITERATOR = "MakeIterator"  # An initializer, named or not, has this type.

# Datasets whose elements have the components of the dataset they read, in
# order: through them an iterator output is traced to the placeholder it came from.
BATCHING = {
    "BatchDataset", "BatchDatasetV2", "PaddedBatchDataset", "PaddedBatchDatasetV2",
}  # fmt: skip
SAME_COMPONENTS = BATCHING | {
    "RepeatDataset", "ShuffleDataset", "ShuffleDatasetV2", "ShuffleDatasetV3",
    "ShuffleAndRepeatDataset", "ShuffleAndRepeatDatasetV2", "PrefetchDataset",
    "TakeDataset", "SkipDataset", "CacheDataset", "CacheDatasetV2", "FilterDataset",
    "ShardDataset", "AssertCardinalityDataset", "AssertNextDataset",
    # What TensorFlow 1.13 and later wrap a dataset in when an iterator is made.
    "ModelDataset", "OptimizeDataset", "OptimizeDatasetV2", "MaxIntraOpParallelismDataset",
    "PrivateThreadPoolDataset", "ExperimentalMaxIntraOpParallelismDataset",
    "ExperimentalPrivateThreadPoolDataset", "ExperimentalAssertNextDataset",
}  # fmt: skip


def is_pipeline(op):
    """Whether an op type belongs to an input pipeline: a dataset, an iterator, a queue, a reader."""
    return (
        "Iterator" in op
        or op.endswith(("Dataset", "DatasetV2", "DatasetV3"))
        or "Queue" in op
        or "Reader" in op
    )


# Signals noted by upgrade_export.py's handlers, acted on between two steps:
# an exception raised inside TensorFlow's code can come out as another one, or none.
STOPPED = []


def go_on():
    if STOPPED:
        raise KeyboardInterrupt  # The staging folder is removed on the way out.
