"""Upgrade a TF1 export that reads its input through a tf.data iterator.

    python3 examples/upgrade_export.py OLD_EXPORT NEW_EXPORT

NEW_EXPORT serves the model's inputs directly: the iterator outputs the
signature's outputs need become its inputs, and no iterator or dataset op is
left. OLD_EXPORT is only read. Nothing is written unless the new export
computes what the old one does on a sample batch.
"""

import os
import signal
import sys


class Refusal(Exception):
    """Why nothing is written, in one line."""


def arguments(argv):
    """OLD_EXPORT, NEW_EXPORT and --at-iterator, checked as far as can be without TensorFlow."""
    at_iterator = "--at-iterator" in argv
    argv = [arg for arg in argv if arg != "--at-iterator"]
    if len(argv) != 2 or not all(argv) or any(arg.startswith("-") for arg in argv):
        raise Refusal(f"usage: python3 {sys.argv[0]} [--at-iterator] OLD_EXPORT NEW_EXPORT")
    old, new = argv
    if os.path.lexists(new):
        raise Refusal(f"{new} already exists: give the name of a folder to create")
    parent = os.path.dirname(os.path.abspath(new))
    if not os.path.isdir(parent):
        raise Refusal(f"no folder {parent} to write {new} in")
    if not os.access(parent, os.W_OK):
        raise Refusal(f"cannot write {new}: {parent} is not a folder you can write to")
    if not os.path.isdir(old):
        raise Refusal(f"{old} is not a folder" if os.path.exists(old) else f"{old}: no such folder")
    if not os.path.isfile(os.path.join(old, "saved_model.pb")):
        raise Refusal(f"{old} is not a SavedModel: it has no saved_model.pb")
    real_old = os.path.realpath(old)
    if os.path.commonpath([real_old, os.path.realpath(os.path.abspath(new))]) == real_old:
        raise Refusal(f"{new} is inside {old}, which this program never writes to")
    return old, new, at_iterator


def stop_now(signum, frame):
    """Ctrl-C or kill before anything is written: the run ends at once, in one line."""
    sys.stderr.write("upgrade_export.py: interrupted before the end: nothing written\n")
    os._exit(1)


if __name__ == "__main__":
    # Before the imports, which take seconds.
    signal.signal(signal.SIGINT, stop_now)
    signal.signal(signal.SIGTERM, stop_now)
    try:
        arguments(sys.argv[1:])
    except Refusal as refusal:
        sys.exit(f"upgrade_export.py: {refusal}")

import collections
import contextlib
import re
import shutil
import tempfile
import types

import numpy as np

# Before the import: no C++ info or warning logs (a batch size tried may fail).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.framework import variable_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow.python.framework import function_def_to_graph

tf.get_logger().setLevel("ERROR")  # The compat.v1 calls below are meant.

GET_NEXT = {"IteratorGetNext", "IteratorGetNextSync"}
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
PROBE = 3  # A batch size to try first: few exports bake this one in.
TOLERANCE = 1e-6


def split_ref(ref):
    """'node:1', 'node' or '^node' (a control input) -> (node, 1 or 0, is_control)."""
    node, _, index = ref.lstrip("^").partition(":")
    return node, int(index or 0), ref.startswith("^")


# ----------------------------------------------------------------------------
# Reading the old export: a MetaGraphDef, never loaded into a session here.


def read_export(path):
    """The serve MetaGraphDef of the SavedModel at path, and its serving_default."""
    saved = saved_model_pb2.SavedModel()
    try:
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            saved.ParseFromString(f.read())
    except DecodeError:
        raise Refusal(f"{path} is not a SavedModel: its saved_model.pb does not parse") from None
    if not saved.meta_graphs:
        raise Refusal(f"{path} is not a SavedModel: its saved_model.pb holds no MetaGraph")
    metas = [m for m in saved.meta_graphs if "serve" in m.meta_info_def.tags]
    if not metas:
        tags = sorted({t for m in saved.meta_graphs for t in m.meta_info_def.tags})
        raise Refusal(f"{path} has no MetaGraph tagged serve (its tags: {', '.join(tags)})")
    meta = min(metas, key=lambda m: len(m.meta_info_def.tags))
    if "serving_default" not in meta.signature_def:
        found = ", ".join(sorted(meta.signature_def)) or "none"
        raise Refusal(f"{path} has no serving_default signature (its signatures: {found})")
    # The shapes recorded when the graph was built: TensorFlow infers them
    # again on import, and refuses those it now infers otherwise (a TF 1.x
    # batch norm's gradients), or that set_shape() narrowed (a batch of 16).
    for node in meta.graph_def.node:
        if "_output_shapes" in node.attr:
            del node.attr["_output_shapes"]
    return meta, meta.signature_def["serving_default"]


def variable_defs(meta):
    for name in ("variables", "local_variables"):
        if name in meta.collection_def:  # (Looking up a missing one would add it.)
            for value in meta.collection_def[name].bytes_list.value:
                yield variable_pb2.VariableDef.FromString(value)


def asset_files(meta):
    """The export's assets: {the tensor that holds a file's path: the file's name in assets/}."""
    found = {}
    if "saved_model_assets" in meta.collection_def:
        for value in meta.collection_def["saved_model_assets"].any_list.value:
            asset = meta_graph_pb2.AssetFileDef()
            value.Unpack(asset)
            found[asset.tensor_info.name] = asset.filename
    return found


class Cut:
    """The nodes the signature's outputs need, walked back to the iterator's get_next.

    A walk stops at a get_next (noting which of its outputs are used) and at a
    signature input (fed, so what computes it is not needed).
    """

    def __init__(self, meta, signature):
        self.nodes = {node.name: node for node in meta.graph_def.node}
        self.fed = {info.name: key for key, info in signature.inputs.items()}
        self.keep = set()
        self.used = collections.defaultdict(set)  # get_next name -> output indices
        self.fed_used = set()  # signature inputs the outputs still need
        self.walk(info.name for info in signature.outputs.values())
        self.model = set(self.keep)  # Without what the variables' initializers add.
        self.readers = collections.defaultdict(set)  # node -> {(reader, input index)}
        for name in self.model:
            for index, ref in enumerate(self.nodes[name].input):
                self.readers[split_ref(ref)[0]].add((name, index))
        self.variables, self.converted = [], []
        for variable_def in variable_defs(meta):
            name = split_ref(variable_def.variable_name)[0]
            snapshot = split_ref(variable_def.snapshot_name)[0]
            if name not in self.model:
                continue
            if not variable_def.is_resource and {r for r, _ in self.readers[name]} == {snapshot}:
                # A reference variable read only through its snapshot is
                # rebuilt as a resource variable: TF2 code loads those whole.
                self.converted.append(variable_def)
                self.keep -= {name, snapshot}
            else:
                self.variables.append(variable_def)
                # TF 1.x saved no snapshot for a resource variable: TF 2 finds
                # this op by its name instead.
                read = name + "/Read/ReadVariableOp"
                self.walk(
                    [
                        variable_def.initializer_name,
                        variable_def.snapshot_name,
                        variable_def.initial_value_name,
                        read if read in self.nodes else "",
                    ]
                )
        # The tables the model reads keep their initializers, which the old
        # export's loader ran (its main op): the new export's runs them too.
        self.table_inits = table_initializers(self, self.model)
        self.walk(self.table_inits)
        # The files they read (vocabularies): assets, by the tensor fed their path.
        self.assets = {
            tensor: filename
            for tensor, filename in asset_files(meta).items()
            if split_ref(tensor)[0] in self.keep
        }

    def walk(self, refs):
        stack = [ref for ref in refs if ref]
        while stack:
            name, index, control = split_ref(stack.pop())
            node = self.nodes[name]
            if not control and f"{name}:{index}" in self.fed:
                self.fed_used.add(f"{name}:{index}")
                continue  # A new placeholder takes its place.
            if node.op in GET_NEXT:
                if not control:
                    self.used[name].add(index)
                continue
            if node.op == "Placeholder" and not control:
                # Read by the model, fed by no signature input: the old export's
                # users fed it by name; the new export's take it as an input.
                self.fed.setdefault(f"{name}:0", name)
                self.fed_used.add(f"{name}:0")
                continue
            if name in self.keep:
                continue
            if "Iterator" in node.op or node.op.endswith(("Dataset", "DatasetV2", "DatasetV3")):
                raise Refusal(
                    f"the signature's outputs use the iterator other than through its "
                    f"get_next (op {name}, of type {node.op}): this program cannot cut there"
                )
            self.keep.add(name)
            stack.extend(node.input)


def initializers(cut, get_next):
    """The initializers (MakeIterator ops) of the iterator a get_next reads, by name."""
    iterator = split_ref(cut.nodes[get_next].input[0])[0]
    return sorted(
        (
            n
            for n in cut.nodes.values()
            if n.op == MAKE_ITERATOR and split_ref(n.input[1])[0] == iterator
        ),
        key=lambda n: n.name,
    )


def table_initializers(cut, tables):
    """The names of the ops that fill these tables (handles by node name)."""
    return sorted(
        n.name
        for n in cut.nodes.values()
        if n.op.startswith(("InitializeTable", "LookupTableImport"))
        and split_ref(n.input[0])[0] in tables
    )


def describe_iterator(cut, get_next):
    """How the old export's users had to start the iterator a get_next reads."""
    iterator = cut.nodes[split_ref(cut.nodes[get_next].input[0])[0]]
    inits = [n.name for n in initializers(cut, get_next)]
    if inits:
        how = f"initializer {', '.join(inits)} ({MAKE_ITERATOR})"
    elif iterator.op.startswith("IteratorFromStringHandle"):
        how = f"a feedable iterator, chosen by the string fed to {iterator.input[0]}"
    elif iterator.op == "OneShotIterator":
        how = "a one-shot iterator, which starts itself"
    else:
        how = "no initializer found"
    return f"iterator {iterator.name} ({iterator.op}), {how}"


def datasets(cut, get_next):
    """The datasets behind a get_next, from the iterator's down to their source, if the graph says."""
    inits = initializers(cut, get_next)
    if len(inits) != 1:
        return  # A feedable or a one-shot iterator: no initializer says which dataset.
    dataset = cut.nodes[split_ref(inits[0].input[0])[0]]
    yield dataset
    while dataset.op in SAME_COMPONENTS:
        dataset = cut.nodes[split_ref(dataset.input[0])[0]]
        yield dataset


def source_placeholder(cut, get_next, index):
    """The tensor of the placeholder an iterator output was sliced from, if the graph says."""
    source = None
    for source in datasets(cut, get_next):
        pass
    if source is None or source.op not in ("TensorSliceDataset", "TensorDataset"):
        return None
    if index >= len(source.input):
        return None
    placeholder = cut.nodes[split_ref(source.input[index])[0]]
    return f"{placeholder.name}:0" if placeholder.op == "Placeholder" else None


# One input of the new export: its signature key, the old tensor it replaces,
# its dtype and shape, and whether its first dimension is the batch's.
Input = collections.namedtuple("Input", "key tensor dtype shape batched")


def new_inputs(cut, signature):
    """The new signature's inputs (Input tuples), and the iterator outputs dropped."""
    inputs, dropped = [], []
    for get_next in sorted(cut.used):
        attrs = cut.nodes[get_next].attr
        # A dataset that batches: the first dimension is the batch, whatever
        # size the iterator declares for it (a batch that drops its remainder).
        batches = any(dataset.op in BATCHING for dataset in datasets(cut, get_next))
        for index, (dtype, shape) in enumerate(
            zip(attrs["output_types"].list.type, attrs["output_shapes"].list.shape)
        ):
            shape = tf.TensorShape(shape)
            batched = shape.rank is not None and shape.rank > 0 and (batches or not shape[0])
            if batched:
                shape = tf.TensorShape([None]).concatenate(shape[1:])
            entry = [None, f"{get_next}:{index}", tf.as_dtype(dtype), shape, batched]
            if index not in cut.used[get_next]:
                dropped.append(entry[1:4])
                continue
            # Named after the placeholder the component came from: by the
            # signature's key for it if it had one, or by its own name.
            source = source_placeholder(cut, get_next, index)
            entry[0] = cut.fed.get(source) or (source and split_ref(source)[0])
            inputs.append(entry)
    for tensor in sorted(cut.fed_used):
        key, node = cut.fed[tensor], cut.nodes[split_ref(tensor)[0]]
        if key in signature.inputs:
            dtype, shape = signature.inputs[key].dtype, signature.inputs[key].tensor_shape
        else:  # A placeholder no signature input feeds.
            dtype, shape = node.attr["dtype"].type, node.attr["shape"].shape
        shape = tf.TensorShape(shape)
        batched = shape.rank is not None and shape.rank > 0 and not shape[0]
        inputs.append([key, tensor, tf.as_dtype(dtype), shape, batched])
    # An output not traced to a placeholder is named by its position.
    keys = [entry[0] for entry in inputs]
    for number, entry in enumerate(inputs):
        if entry[0] is None or keys.count(entry[0]) > 1:
            entry[0] = "input" if len(inputs) == 1 else f"input_{number}"
    return [Input(*entry) for entry in inputs], dropped


# ----------------------------------------------------------------------------
# Serving from what the pipeline took: its work on each element, run on a request's rows.

MAPS = {"MapDataset", "ParallelMapDataset", "ParallelMapDatasetV2"}
# What changes neither an element nor which elements a request's rows give.
PASS_THROUGH = {
    "RepeatDataset", "ShuffleDataset", "ShuffleDatasetV2", "ShuffleDatasetV3",
    "ShuffleAndRepeatDataset", "ShuffleAndRepeatDatasetV2", "PrefetchDataset", "CacheDataset",
    "CacheDatasetV2", "ModelDataset", "OptimizeDataset", "OptimizeDatasetV2",
    "MaxIntraOpParallelismDataset", "PrivateThreadPoolDataset",
    "ExperimentalMaxIntraOpParallelismDataset", "ExperimentalPrivateThreadPoolDataset",
}  # fmt: skip
RANDOM = re.compile(r"Random|Multinomial|Shuffle")

# The pipeline as it runs on a request: its sources (Input tuples of the
# placeholders it sliced), its map()s in order (function, captured tensors),
# its batching node, and the old graph's nodes it reads (tables, constants),
# with their tables' initializers and their assets; and the iterator's initializer.
Front = collections.namedtuple("Front", "sources maps batch nodes table_inits assets init")


def pipeline_front(cut, signature, meta):
    """The pipeline of the model's one iterator, if it can run on a request: (Front, None),
    or (None, why not)."""
    if len(cut.used) != 1:
        return None, "the model reads more than one iterator"
    (get_next,) = cut.used
    inits = initializers(cut, get_next)
    if len(inits) != 1:
        return None, "no initializer says which dataset the iterator reads"
    node, batch, maps = cut.nodes[split_ref(inits[0].input[0])[0]], None, []
    while node.op in PASS_THROUGH | BATCHING | MAPS:
        if node.op in BATCHING:
            if batch or maps:
                return None, "it batches more than once"
            batch = node
        elif node.op in MAPS:
            if not batch:
                return None, "a map() works on whole batches"
            maps.insert(0, node)
        node = cut.nodes[split_ref(node.input[0])[0]]
    if not batch:
        return None, "it does not batch"
    if not maps:
        return None, None  # Batches of the rows as they were fed: nothing to carry over.
    sources = [cut.nodes[split_ref(ref)[0]] for ref in node.input]
    if node.op != "TensorSliceDataset" or not all(f"{s.name}:0" in cut.fed for s in sources):
        return None, f"its elements come from a {node.op}, not from signature inputs sliced"
    library = {f.signature.name: f for f in meta.graph_def.library.function}
    captured, functions = [], []
    for map_node in maps:
        function = map_node.attr["f"].func.name
        bodies = functions_used(meta.graph_def.library, library[function].node_def) | {function}
        if any(RANDOM.search(n.op) for f in bodies for n in library[f].node_def):
            return None, "a map() draws random numbers: another result for each call"
        count = len(map_node.attr["Targuments"].list.type)
        captured.append(list(map_node.input[1 : 1 + count]))
        functions.append(function)
    # The old graph's nodes the maps and the padding read, with what they read.
    reads = [ref for refs in captured for ref in refs] + list(batch.input[2:])
    nodes, stack = set(), [split_ref(ref)[0] for ref in reads]
    while stack:
        name = stack.pop()
        if name in nodes:
            continue
        if cut.nodes[name].op in ("Placeholder", "VarHandleOp", "VariableV2"):
            return None, f"its map() or its padding reads {name}, which a request does not give"
        nodes.add(name)
        stack.extend(split_ref(ref)[0] for ref in cut.nodes[name].input)
    table_inits = table_initializers(cut, nodes)
    for name in table_inits:
        stack = [name]
        while stack:
            name = stack.pop()
            if name not in nodes:
                nodes.add(name)
                stack.extend(split_ref(ref)[0] for ref in cut.nodes[name].input)
    assets = {t: f for t, f in asset_files(meta).items() if split_ref(t)[0] in nodes}
    sources = [
        Input(
            cut.fed[f"{s.name}:0"],
            f"{s.name}:0",
            *key_type(signature, cut.fed[f"{s.name}:0"]),
            True,
        )
        for s in sources
    ]
    maps = list(zip(functions, captured))
    front = Front(sources, maps, batch, frozenset(nodes), table_inits, assets, inits[0].name)
    return front, None


def key_type(signature, key):
    """The dtype and shape a signature input declares."""
    info = signature.inputs[key]
    return tf.as_dtype(info.dtype), tf.TensorShape(info.tensor_shape)


def forget_paths(path):
    """Makes each asset's path in the export at path its file's name: the loader feeds the
    path of the file in the export's own assets/, wherever it is; the path the
    builder copied it from, on this machine, is no one's business."""
    pb = os.path.join(path, "saved_model.pb")
    with open(pb, "rb") as f:
        saved = saved_model_pb2.SavedModel.FromString(f.read())
    for meta in saved.meta_graphs:
        names = {split_ref(t)[0]: f for t, f in asset_files(meta).items()}
        for node in meta.graph_def.node:
            if node.name in names:
                node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(names[node.name].encode()))
    with open(pb, "wb") as f:
        f.write(saved.SerializeToString())


def run_front(meta, job, placeholders):
    """Builds the pipeline's work on the request's rows; returns {get_next output: its batch}."""
    front, cut = job.front, job.cut
    graph = tf.compat.v1.get_default_graph()
    tables = tf.compat.v1.GraphDef()
    tables.versions.CopyFrom(meta.graph_def.versions)
    list(copy_nodes(meta, front.nodes, tables, job.old, front.assets))
    tf.graph_util.import_graph_def(tables, name="")
    library = {f.signature.name: f for f in meta.graph_def.library.function}
    element = cut.nodes[split_ref(front.batch.input[0])[0]].attr  # What each element is.
    types = element["output_types"].list.type
    shapes = [tf.TensorShape(shape) for shape in element["output_shapes"].list.shape]

    def per_element(row):
        components = list(row)
        for number, (function, captured) in enumerate(front.maps):
            body, names = function_def_to_graph.function_def_to_graph_def(library[function])
            body.library.function.extend(
                library[f]
                for f in functions_used(meta.graph_def.library, library[function].node_def)
            )
            # What the map captured, from the graph outside the loop.
            outside = [tf.identity(graph.get_tensor_by_name(tensor_ref(ref))) for ref in captured]
            arguments = library[function].signature.input_arg
            inputs = {f"{a.name}:0": v for a, v in zip(arguments, components + outside)}
            returns = [
                names[library[function].ret[o.name]] for o in library[function].signature.output_arg
            ]
            components = tf.graph_util.import_graph_def(
                body, input_map=inputs, return_elements=returns, name=f"map_{number}"
            )
        return tuple(components)

    count, get_next = len(types), next(iter(cut.used))
    with tf.name_scope("upgraded/pipeline"):
        rows = tuple(placeholders[s.key] for s in front.sources)
        if not front.batch.op.startswith("PaddedBatch"):  # Elements of one shape, stacked.
            signature = tuple(tf.TensorSpec(s, tf.as_dtype(t)) for t, s in zip(types, shapes))
            batch = tf.map_fn(per_element, rows, fn_output_signature=signature)
            return {f"{get_next}:{i}": component for i, component in enumerate(batch)}
        # As padded_batch() does: each element padded, with the padding value,
        # to the padded shape, whose unknown dimensions are the batch's largest.
        # (Twice through the elements, not a ragged tensor: ONNX takes this.)
        sizes = tf.map_fn(
            lambda row: tuple(tf.shape(c) for c in per_element(row)),
            rows,
            fn_output_signature=tuple(tf.TensorSpec([s.rank], tf.int32) for s in shapes),
        )
        targets = []
        for index, size in enumerate(sizes):
            node = cut.nodes[split_ref(front.batch.input[2 + index])[0]]
            fixed = tf.make_ndarray(node.attr["value"].tensor).astype(np.int32)
            largest = tf.reduce_max(tf.concat([size, tf.zeros_like(size[:1])], 0), axis=0)
            targets.append(tf.where(fixed < 0, largest, fixed))
        padding = [tensor_ref(r) for r in front.batch.input[2 + count : 2 + 2 * count]]

        def padded_element(row):
            padded = []
            for component, target, value, shape in zip(per_element(row), targets, padding, shapes):
                if shape.rank:  # (A scalar has nothing to pad.)
                    value = tf.identity(graph.get_tensor_by_name(value))
                    ends = tf.stack([tf.zeros_like(target), target - tf.shape(component)], axis=1)
                    component = tf.pad(component, ends, constant_values=value)
                padded.append(component)
            return tuple(padded)

        signature = tuple(
            tf.TensorSpec([None] * s.rank, tf.as_dtype(t)) for t, s in zip(types, shapes)
        )
        batch = tf.map_fn(padded_element, rows, fn_output_signature=signature)
    return {f"{get_next}:{i}": component for i, component in enumerate(batch)}


def tensor_ref(ref):
    """'node' or 'node:1' (an input of a node) -> 'node:0' or 'node:1' (a tensor name)."""
    node, index, _ = split_ref(ref)
    return f"{node}:{index}"


# ----------------------------------------------------------------------------
# A batch size baked into the graph (the post's sequence_length=[10] * 32).


# Where a constant is read as a shape that starts with the batch size, and
# where it is read as an index or an axis, never a batch of anything.
AS_SHAPE = {("ConcatV2", 0), ("Fill", 0), ("Reshape", 1), ("BroadcastTo", 1)}
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


# ----------------------------------------------------------------------------
# Writing and running.


def functions_used(library, nodes):
    """The names of the library's functions that nodes call, directly or through others."""
    bodies = {function.signature.name: function.node_def for function in library.function}
    used, stack = set(), list(nodes)
    while stack:
        node = stack.pop()
        called = {node.op} if node.op in bodies else set()
        for value in node.attr.values():
            called |= {f.name for f in [value.func, *value.list.func] if f.name}
        for name in called - used:
            used.add(name)
            stack.extend(bodies.get(name, []))
    return used


def copy_nodes(meta, names, graph_def, old, assets):
    """Copies the nodes of these names into graph_def: what the new export holds of them.

    Without control edges to nodes left out, nor colocation with them (a
    variable rebuilt); an asset's path becomes the file's in OLD's assets/,
    which the builder copies into the new export's.
    """
    paths = {split_ref(t)[0]: os.path.join(old, "assets", f) for t, f in assets.items()}
    for node in meta.graph_def.node:
        if node.name not in names:
            continue
        kept = graph_def.node.add()
        kept.CopyFrom(node)
        del kept.input[:]
        kept.input.extend(r for r in node.input if not r.startswith("^") or r[1:] in names)
        if "_class" in kept.attr:
            del kept.attr["_class"]
        if node.name in paths:
            path = os.path.abspath(paths[node.name]).encode()
            kept.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(path))
        yield kept


def pruned_meta(meta, cut, batch_size, old, imported=frozenset()):
    """A MetaGraphDef of the kept nodes, the functions they call, and the kept variables.

    batch_size, if given, is made unknown where the nodes' attributes hold it as
    a shape's first dimension (a TensorArray's element shape [32, 30]).
    imported: nodes already in the graph (the pipeline's tables), left out.
    """
    pruned = tf.compat.v1.MetaGraphDef()
    pruned.meta_info_def.CopyFrom(meta.meta_info_def)
    pruned.graph_def.versions.CopyFrom(meta.graph_def.versions)
    for kept in copy_nodes(meta, cut.keep - imported, pruned.graph_def, old, cut.assets):
        if batch_size and kept.name in cut.model:
            for value in kept.attr.values():
                for shape in [
                    *value.list.shape,
                    *([value.shape] if value.HasField("shape") else []),
                ]:
                    if shape.dim and shape.dim[0].size == batch_size:
                        shape.dim[0].size = -1
    # Only the functions the kept nodes call: the datasets' own (their maps,
    # a one-shot iterator's factory, the data it holds) stay behind.
    library = meta.graph_def.library
    used = functions_used(library, pruned.graph_def.node)
    pruned.graph_def.library.function.extend(
        f for f in library.function if f.signature.name in used
    )
    pruned.graph_def.library.gradient.extend(g for g in library.gradient if g.function_name in used)
    for variable_def in cut.variables:
        names = {"variables"} | ({"trainable_variables"} if variable_def.trainable else set())
        for name in names:
            pruned.collection_def[name].bytes_list.value.append(variable_def.SerializeToString())
    return pruned


def write_new(path, job, fixes=(), batch_size=None, pinned=None):
    """Writes the cut graph at path; returns its inputs' tensor names by key.

    fixes: batch_constants(), for inputs of any batch size in place of
    batch_size; pinned: the one batch size the batched inputs declare instead.
    """
    go_on()
    old, meta, signature, cut, inputs = job.old, job.meta, job.signature, job.cut, job.inputs
    with tf.Graph().as_default() as graph, tf.compat.v1.Session() as sess:
        placeholders, input_map = {}, {}
        for variable_def in cut.converted:
            node = cut.nodes[split_ref(variable_def.variable_name)[0]]
            variable = tf.compat.v1.get_variable(
                node.name,
                tf.TensorShape(node.attr["shape"].shape),
                tf.as_dtype(node.attr["dtype"].type),
                tf.compat.v1.zeros_initializer(),
                trainable=variable_def.trainable,
                use_resource=True,
            )
            input_map[variable_def.snapshot_name] = variable.read_value()
        for key, tensor, dtype, shape, batched in inputs:
            # Named as its key, so that what reads the signature by tensor
            # names (tf2onnx) sees the same names; renamed where that is taken.
            name = re.sub(r"[^\w.\-/]", "_", key)
            if name in cut.keep or not re.match(r"[A-Za-z0-9.]", name):
                name = f"upgraded/{name}"
            if batched and pinned:
                shape = tf.TensorShape([pinned]).concatenate(shape[1:])
            placeholders[key] = tf.compat.v1.placeholder(dtype, shape, name)
            if not job.front or key not in [s.key for s in job.front.sources]:
                input_map[tensor] = placeholders[key]
        imported, front = frozenset(), {}
        if job.front:  # The pipeline's work on the request's rows, at the iterator's place.
            imported, front = job.front.nodes, run_front(meta, job, placeholders)
            input_map.update(front)
            # The model's references to what the pipeline's part brought in (a table).
            for name in cut.keep - imported:
                for ref in cut.nodes[name].input:
                    if split_ref(ref)[0] in imported and not ref.startswith("^"):
                        input_map[tensor_ref(ref)] = graph.get_tensor_by_name(tensor_ref(ref))
        with tf.name_scope("upgraded/batch_size"):
            batched = next(placeholders[i.key] for i in inputs if i.batched) if fixes else None
            for name, kind, value in fixes:
                batch = tf.shape(batched, out_type=tf.int64)[:1]
                if kind == "rows":
                    shape = tf.concat([batch, value.shape[1:]], 0)
                    input_map[f"{name}:0"] = tf.fill(shape, tf.constant(value.flat[0]))
                else:
                    input_map[f"{name}:0"] = tf.concat([tf.cast(batch, value.dtype), value[1:]], 0)
        tf.compat.v1.train.import_meta_graph(
            pruned_meta(meta, cut, batch_size, old, imported),
            input_map=input_map,
            clear_devices=True,
        )
        variables = tf.compat.v1.global_variables()
        if variables:
            checkpoint = os.path.join(old, "variables", "variables")
            tf.compat.v1.train.Saver(variables).restore(sess, checkpoint)
        info = tf.compat.v1.saved_model.build_tensor_info
        outputs = {key: graph.get_tensor_by_name(o.name) for key, o in signature.outputs.items()}
        new_signature = tf.compat.v1.saved_model.build_signature_def(
            {key: info(p) for key, p in placeholders.items()},
            {key: info(t) for key, t in outputs.items()},
            signature.method_name or "tensorflow/serving/predict",
        )
        # The tables' initializers run when the export is loaded, as the old
        # export's main op ran them, with the paths of its own assets/ fed.
        inits = [graph.get_operation_by_name(name) for name in cut.table_inits]
        assets = {**cut.assets, **(job.front.assets if job.front else {})}
        assets = [graph.get_tensor_by_name(tensor) for tensor in sorted(assets)]
        if job.front:
            inits += [graph.get_operation_by_name(name) for name in job.front.table_inits]
        builder = tf.compat.v1.saved_model.Builder(path)
        builder.add_meta_graph_and_variables(
            sess,
            ["serve"],
            {"serving_default": new_signature},
            assets_collection=assets or None,
            main_op=tf.group(*inits, name="upgraded/main_op") if inits else None,
            strip_default_attrs=True,
        )
        builder.save()
        if assets:
            forget_paths(path)
        # The inputs' names by key, and what the pipeline gives by the get_next output it replaces.
        return {
            **{key: p.name for key, p in placeholders.items()},
            **{tensor: batch.name for tensor, batch in front.items()},
        }


# What a loader needs of the collections beside the variables: the ops it runs
# once the variables are restored (a main op, tables' initializers), and assets.
LOADER_COLLECTIONS = {
    "saved_model_main_op", "legacy_init_op", "main_op", "table_initializer", "asset_filepaths",
}  # fmt: skip


def loadable_copy(old, meta, path):
    """Writes at path a SavedModel of OLD's serving graph alone, which TensorFlow 2 loads.

    The training side (gradients, the optimizer's updates) is left out: a TF 1.x
    graph can hold forms there that TF 2 refuses. Variables and assets are OLD's own.
    """
    copy = saved_model_pb2.SavedModel(saved_model_schema_version=1)
    kept = copy.meta_graphs.add()
    kept.meta_info_def.CopyFrom(meta.meta_info_def)
    kept.saver_def.CopyFrom(meta.saver_def)
    kept.signature_def.MergeFrom(meta.signature_def)
    roots = [kept.saver_def.restore_op_name, kept.saver_def.filename_tensor_name]
    for signature in meta.signature_def.values():
        roots += [info.name for info in [*signature.inputs.values(), *signature.outputs.values()]]
    # The iterators' initializers, with the datasets they start.
    roots += [node.name for node in meta.graph_def.node if node.op == MAKE_ITERATOR]
    for variable_def in variable_defs(meta):
        roots += [variable_def.variable_name, variable_def.initializer_name]
        roots += [variable_def.snapshot_name, variable_def.initial_value_name]
        # TF 1.x saved no snapshot for a resource variable: TF 2 looks for this op.
        roots.append(split_ref(variable_def.variable_name)[0] + "/Read/ReadVariableOp")
    for key, collection in meta.collection_def.items():
        if key in ("variables", "trainable_variables", "local_variables", "saved_model_assets"):
            kept.collection_def[key].CopyFrom(collection)
        elif key in LOADER_COLLECTIONS:
            kept.collection_def[key].CopyFrom(collection)
            roots += collection.node_list.value
    nodes = {node.name: node for node in meta.graph_def.node}
    needed, stack = set(), [split_ref(ref)[0] for ref in roots if ref]
    while stack:
        name = stack.pop()
        if name in nodes and name not in needed:
            needed.add(name)
            stack.extend(split_ref(ref)[0] for ref in nodes[name].input)
    kept.graph_def.versions.CopyFrom(meta.graph_def.versions)
    kept.graph_def.library.CopyFrom(meta.graph_def.library)
    for node in meta.graph_def.node:
        if node.name in needed:
            copied = kept.graph_def.node.add()
            copied.CopyFrom(node)
            if "_class" in node.attr:
                colocated = {c.decode()[len("loc:@") :] for c in node.attr["_class"].list.s}
                if not colocated <= needed:
                    del copied.attr["_class"]  # Colocated with a node left out.
    os.mkdir(path)
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
        f.write(copy.SerializeToString())
    for folder in ("variables", "assets"):
        if os.path.isdir(os.path.join(old, folder)):
            os.symlink(os.path.abspath(os.path.join(old, folder)), os.path.join(path, folder))


@contextlib.contextmanager
def loaded(path):
    """The SavedModel at path, loaded in a graph of its own: (session, its serving_default)."""
    go_on()
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
        yield sess, meta.signature_def["serving_default"]


def run_export(path, feeds, extra=()):
    """Loads the export at path in a graph of its own; its outputs for feeds by tensor name.

    extra: the names of other tensors to fetch, under their names.
    """
    with loaded(path) as (sess, signature):
        fetches = {key: info.name for key, info in signature.outputs.items()}
        return sess.run({**fetches, **{name: name for name in extra}}, feeds)


def run_new(path, names, values, extra=()):
    """The new export at path fed values by input key (names: their tensor names)."""
    return run_export(path, {names[key]: value for key, value in values.items()}, extra)


def through_old_iterator(job, path, values):
    """The old export at path fed values at its pipeline's placeholders, through its iterator.

    A signature input that only the pipeline reads (a batch size) is given
    the number of rows.
    """
    rows = next(len(value) for value in values.values() if np.ndim(value))
    with loaded(path) as (sess, signature):
        feeds = {i.tensor: values[i.key] for i in job.inputs}
        for info in signature.inputs.values():
            feeds.setdefault(info.name, np.array(rows, tf.as_dtype(info.dtype).as_numpy_dtype))
        sess.run(job.front.init, feeds)
        return sess.run({key: info.name for key, info in signature.outputs.items()}, feeds)


def cause(error):
    """What a TensorFlow error says, in one line: its first sentence, and the op that failed."""
    message = str(getattr(error, "message", None) or error)
    # TensorFlow 2's session errors start with a header and a trace of where
    # the op was made: the cause is the first line that is neither.
    skip = re.compile(r"Graph execution error|Detected at node|Node:|\s|$")
    lines = [line for line in message.splitlines() if not skip.match(line)] or [message]
    line = lines[0].strip().split(" with error ")[0]  # (A NodeDef's whole description.)
    node = re.search(r"\{\{node ([^}]+)\}\}", message)
    op = node.group(1) if node else getattr(getattr(error, "op", None), "name", None)
    return f"{line} (at op {op})" if op and op not in line else line


def sample(inputs, rows, rng, words=None):
    """Values to check with: normal floats, integer ones (a valid id or length), rows of them.

    Strings are sentences of 1 to 5 of words[1] (the words of a vocabulary
    file: see vocabulary()). An input that is not batched, the model reads
    directly: an integer scalar is given the number of rows (a batch size), a
    float one 1.0 (a keep probability), a bool False (not training).
    """
    values = {}
    for key, _, dtype, shape, batched in inputs:
        dims = [d or 10 for d in shape] if shape.rank else []
        if batched:
            dims[0] = rows
        if dtype == tf.string:
            vocabulary = words[1] if words else ["a", "b", "c"]
            sentences = [
                " ".join(rng.choice(vocabulary, rng.integers(1, 6)))
                for _ in range(np.prod(dims, dtype=int))
            ]
            values[key] = np.array([s.encode() for s in sentences], object).reshape(dims)
        elif not dims:
            scalar = rows if dtype.is_integer else 1.0 if dtype.is_floating else 0
            values[key] = np.array(scalar, dtype.as_numpy_dtype)
        elif dtype.is_floating:
            values[key] = rng.standard_normal(dims).astype(dtype.as_numpy_dtype)
        elif dtype.is_integer:
            values[key] = np.ones(dims, dtype.as_numpy_dtype)
        else:
            values[key] = np.zeros(dims, dtype.as_numpy_dtype)
    return values


def vocabulary(old, assets):
    """The words of the first vocabulary file among assets: (its name, words), or None."""
    for filename in sorted(assets.values()):
        with open(os.path.join(old, "assets", filename), "rb") as f:
            lines = [line.strip().decode(errors="replace") for line in f]
        words = [w for w in lines if w and not w.startswith("<") and len(w.split()) == 1]
        if words:
            return filename, words
    return None


def resized(inputs, values, rows, extra):
    """The sample made `rows` rows: its own rows, then extra's; a batch size made to agree."""
    batch = {}
    for key, _, dtype, _, batched in inputs:
        value = values[key]
        if batched:
            value = np.concatenate([value, extra[key]])[:rows]
        elif not np.ndim(value) and dtype.is_integer:
            value = np.array(rows, value.dtype)
        batch[key] = value
    return batch


def scalars_fed(inputs, values, words=None):
    """What the sample fed but numbers: ' (src: sentences of words of source.txt, batch_size 3)'."""
    fed = [
        f"{i.key}: sentences of words of {words[0] if words else 'a, b and c'}"
        for i in inputs
        if i.dtype == tf.string and np.ndim(values[i.key])
    ]
    fed += [f"{i.key} {values[i.key].item()}" for i in inputs if not np.ndim(values[i.key])]
    return f" ({', '.join(fed)})" if fed else ""


def dims(shape):
    return "of unknown shape" if shape.rank is None else str(tuple(shape.as_list()))


def largest_difference(a, b):
    """Between outputs by key: floats' largest difference; strings and integers are equal or not (inf)."""
    largest = 0.0
    for key, value in a.items():
        value, other = np.asarray(value), np.asarray(b[key])
        if value.dtype.kind == "f":
            largest = max(largest, float(np.max(np.abs(value - other), initial=0.0)))
        elif value.shape != other.shape or (value != other).any():
            largest = float("inf")
    return largest


def pipeline_left(path):
    """The dataset and iterator ops of the export at path, in its graph or its functions."""
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        (meta,) = saved_model_pb2.SavedModel.FromString(f.read()).meta_graphs
    functions = meta.graph_def.library.function
    nodes = [*meta.graph_def.node, *(node for f in functions for node in f.node_def)]
    return sorted({node.op for node in nodes if "Dataset" in node.op or "Iterator" in node.op})


def kilobytes(path):
    sizes = [
        os.path.getsize(os.path.join(top, n)) for top, _, names in os.walk(path) for n in names
    ]
    return f"{sum(sizes) / 1024:.0f} KB"


# ----------------------------------------------------------------------------
# The upgrade.


def report(job, dropped, front, why):
    old, cut, inputs = job.old, job.cut, job.inputs
    print(f"{old} reads its input through a tf.data iterator:")
    for get_next in sorted(cut.used):
        print(f"  {describe_iterator(cut, get_next)}")
    if front:
        taken = [s.key for s in front.sources]
        steps = f"{len(front.maps)} map()" + ("s" if len(front.maps) > 1 else "")
        batch = "padded_batch()" if front.batch.op.startswith("Padded") else "batch()"
        print(f"  pipeline: from_tensor_slices({', '.join(taken)}), {steps}, {batch}: carried over")
        for key, tensor, dtype, shape, _ in front.sources:
            print(f"  kept:    {tensor} as input {key!r}: {dtype.name} {dims(shape)}, as fed to it")
    for key, tensor, dtype, shape, _ in inputs:
        if front and split_ref(tensor)[0] in cut.used:
            print(f"  made:    {tensor}: {dtype.name} {dims(shape)}, by the pipeline from it")
        else:
            print(f"  kept:    {tensor} as input {key!r}: {dtype.name} {dims(shape)}")
    for tensor, dtype, shape in dropped:
        print(f"  dropped: {tensor}: {dtype.name} {dims(shape)}, which no output uses")
    unused = sorted(key for tensor, key in cut.fed.items() if tensor not in cut.fed_used)
    taken = [s.key for s in front.sources] if front else []
    reused = [key for key in unused if key in {i.key for i in inputs} and key not in taken]
    if set(unused) - set(reused) - set(taken):
        dropped = ", ".join(key for key in unused if key not in reused + taken)
        print(f"  dropped: signature inputs {dropped}, which only feed the iterator")
    if reused:
        print(f"  reused:  {', '.join(reused)}, now the keys of the batches made of their data")
    if why:
        print(f"  pipeline: not carried over ({why}): the new export takes the iterator's outputs")
    total = len(list(variable_defs(job.meta)))
    kept = len(cut.variables) + len(cut.converted)
    made = f"; {len(cut.converted)} reference ones made resource" if cut.converted else ""
    print(f"  variables: {kept} of {total}, the model's{made}")


def run_old(job, path, rng):
    """The old export, copied to path, fed a sample batch at its iterator's outputs.

    Returns (rows, values, outputs). A batch size the graph holds shows in the
    shapes it declares, or as the only size that runs.
    """
    loadable_copy(job.old, job.meta, path)
    shapes = [info.tensor_shape for info in job.signature.outputs.values()]
    shapes += [s for g in job.cut.used for s in job.cut.nodes[g].attr["output_shapes"].list.shape]
    declared = {s.dim[0].size for s in shapes if s.dim and s.dim[0].size > 0}
    errors = []
    try:
        with loaded(path) as (sess, signature):
            fetches = {key: info.name for key, info in signature.outputs.items()}
            for rows in (
                sorted(declared) if len(declared) == 1 else [PROBE, *candidate_sizes(job.cut)]
            ):
                values = sample(job.inputs, rows, rng)
                try:
                    return (
                        rows,
                        values,
                        sess.run(fetches, {i.tensor: values[i.key] for i in job.inputs}),
                    )
                except (tf.errors.OpError, ValueError) as error:
                    errors.append(f"{scalars_fed(job.inputs, values)}: {cause(error)}")
    except (tf.errors.OpError, ValueError, KeyError) as error:
        raise Refusal(
            f"{job.old} does not load in TensorFlow {tf.__version__}: {cause(error)}"
        ) from None
    raise Refusal(f"{job.old} does not run on a sample batch{errors[0]}")


def at_other_sizes(path, job, names, values, outputs, extra):
    """None when the export at path gives the same rows in other batches; else why not.

    The batches: the sample with three more rows after it, and its first row
    alone. Outputs that are not one row per input row (a metric of the batch)
    only have to run.
    """
    rows = next((len(values[i.key]) for i in job.inputs if i.batched), None)
    if rows is None:
        return None  # No batch to change.
    for size in (rows + 3, 1):
        try:
            got = run_new(path, names, resized(job.inputs, values, size, extra))
        except (tf.errors.OpError, ValueError) as error:
            return f"a batch of {size} fails: {cause(error)}"
        for key, value in got.items():
            if not np.ndim(outputs[key]) or len(outputs[key]) != rows:
                continue
            if np.shape(value)[:1] != (size,):
                return f"a batch of {size} gives {key} of shape {np.shape(value)}"
            common = min(size, rows)
            if largest_difference({key: value[:common]}, {key: outputs[key][:common]}) > TOLERANCE:
                return f"a batch of {size} gives other values of {key} for the same rows"
    return None


def any_batch_size(path, job, fixes, batch, values, expected, extra):
    """Writes NEW with the batch size taken from its input (fixes); whether it is safe."""
    if not fixes:
        return False
    try:
        names = write_new(path, job, fixes, batch)
        got = run_new(path, names, values)
    except (tf.errors.OpError, ValueError):
        return False
    if largest_difference(got, expected) > TOLERANCE:
        return False
    return at_other_sizes(path, job, names, values, got, extra) is None


def upgrade(old, new, at_iterator=False):
    meta, signature = read_export(old)
    cut = Cut(meta, signature)
    if not cut.used:
        raise Refusal(
            f"{old}: its signature's outputs do not go through a tf.data iterator once "
            f"its inputs are fed, so it serves as it is: there is nothing to upgrade"
        )
    inputs, dropped = new_inputs(cut, signature)
    front, why = (
        (None, "as --at-iterator asks") if at_iterator else pipeline_front(cut, signature, meta)
    )
    job = types.SimpleNamespace(old=old, meta=meta, signature=signature, cut=cut, inputs=inputs)
    job.front = None
    report(job, dropped, front, why)
    missing = sorted(
        f
        for f in {**cut.assets, **(front.assets if front else {})}.values()
        if not os.path.isfile(os.path.join(old, "assets", f))
    )
    if missing:
        raise Refusal(f"{old} has no assets/{missing[0]}, the file its tables are filled from")
    try:
        staging = tempfile.mkdtemp(
            ".tmp", ".upgrade_export-", os.path.dirname(os.path.abspath(new))
        )
    except OSError as error:
        raise Refusal(f"cannot write beside {new}: {error.strerror}") from None
    try:
        rng = np.random.default_rng(0)
        copy = os.path.join(staging, "old")
        batch, values, expected = run_old(job, copy, rng)
        extra = sample(inputs, 3, rng)
        # The model as it was, fed at the iterator's place.
        path = os.path.join(staging, "as_old")
        try:
            names = write_new(path, job)
            got = run_new(path, names, values)
        except (tf.errors.OpError, ValueError) as error:
            raise Refusal(
                f"cannot rebuild the model without its iterator: {cause(error)}"
            ) from None
        difference = largest_difference(got, expected)
        print(f"check: old and new fed the same sample batch of {batch}", end="")
        print(f"{scalars_fed(inputs, values)}: largest difference {difference:.3g}")
        if not difference <= TOLERANCE:
            raise Refusal(f"the new export would compute other outputs: {new} not written")
        if front:
            # Then with the pipeline in front, fed what the pipeline took.
            job, path, names, values, got, expected, extra = with_pipeline(
                job, front, staging, copy, path, names, batch, rng
            )
        fixes = batch_constants(cut, batch)
        any_batch = os.path.join(staging, "any_batch")
        failing = at_other_sizes(path, job, names, values, got, extra)
        if failing is None:
            print("batch size: any, as the old export")
        elif any_batch_size(any_batch, job, fixes, batch, values, got, extra):
            path = any_batch
            print(
                f"batch size: the old export runs batches of {batch} only (its graph holds "
                f"{batch} in {len(fixes)} constants); the new one takes "
                f"the batch size from its input: any batch size (checked with {batch + 3} and 1)"
            )
        else:
            # Written again, its inputs declaring that size: a server can tell.
            path = os.path.join(staging, "pinned")
            names = write_new(path, job, pinned=batch)
            got = run_new(path, names, values)
            if largest_difference(got, expected) > TOLERANCE:
                raise Refusal(f"the new export would compute other outputs: {new} not written")
            # Named: the constants that hold the size, those it could not rebuild first.
            fixed = [name for name, *_ in fixes]
            held = [name for name in rows_of(cut, batch) if name not in fixed] + fixed
            names = ", ".join(held[:3]) + (", ..." if len(held) > 3 else "")
            why = (
                f"its graph holds {batch} in {names}, where this program cannot safely take "
                f"it from the input"
                if held
                else failing
            )
            print(f"batch size: {batch} only, as the old export: {why}")
        left = pipeline_left(path)
        if left:
            raise Refusal(f"the new export would keep ops of the pipeline ({', '.join(left)})")
        if os.path.lexists(new):
            raise Refusal(f"{new} appeared while this ran: not replaced")
        go_on()
        os.rename(path, new)
    finally:
        shutil.rmtree(staging)
    keys = ", ".join(key for key, *_ in job.inputs) or "nothing"
    print(f"wrote {new}, {kilobytes(new)} ({old}: {kilobytes(old)}): ", end="")
    print(f"its serving_default takes {keys}, with no iterator")


def with_pipeline(job, front, staging, copy, as_old, as_old_names, rows, rng):
    """Writes the export with the pipeline's work in front, and checks it.

    What it is checked against: the old export fed the same rows through its
    own iterator; or, where the old pipeline does not run here (a TF 1.x one),
    the model as it was (the export at as_old) fed what the new pipeline made.
    Returns what the rest of the upgrade goes on with.
    """
    get_next = {i.tensor for i in job.inputs if split_ref(i.tensor)[0] in job.cut.used}
    inputs = front.sources + [i for i in job.inputs if i.tensor not in get_next]
    original = job.inputs
    job = types.SimpleNamespace(**{**vars(job), "inputs": inputs, "front": front})
    words = vocabulary(job.old, front.assets)
    values, extra = sample(inputs, rows, rng, words), sample(inputs, 3, rng, words)
    path = os.path.join(staging, "pipeline")
    try:
        names = write_new(path, job)
        got = run_new(path, names, values, [names[t] for t in sorted(get_next)])
    except (tf.errors.OpError, ValueError) as error:
        raise Refusal(f"cannot run the pipeline on the request's rows: {cause(error)}") from None
    made = {t: got.pop(names[t]) for t in get_next}
    fed = scalars_fed(inputs, values, words)
    try:
        expected = through_old_iterator(job, copy, values)
        against = "the old one fed the same through its iterator"
    except (tf.errors.OpError, ValueError) as error:
        ids = {i.key: made[i.tensor] if i.tensor in made else values[i.key] for i in original}
        expected = run_new(as_old, as_old_names, ids)
        against = f"the model fed what it made (the old pipeline does not run here: {cause(error)})"
    difference = largest_difference(got, expected)
    print(
        f"check: the new export fed {rows} rows{fed}, {against}: largest difference {difference:.3g}"
    )
    if not difference <= TOLERANCE:
        raise Refusal("the new export's pipeline would compute other outputs: nothing written")
    return job, path, names, values, got, expected, extra


def main(argv):
    old, new, at_iterator = arguments(argv)
    upgrade(old, new, at_iterator)


STOPPED = []


def stop(signum, frame):
    # Noted, and acted on between two steps: an exception raised inside
    # TensorFlow's code can come out as another one, or none.
    STOPPED.append(signum)


def go_on():
    if STOPPED:
        raise KeyboardInterrupt  # The staging folder is removed on the way out.


if __name__ == "__main__":
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        main(sys.argv[1:])
    except Refusal as refusal:
        sys.exit(f"upgrade_export.py: {refusal}")
    except KeyboardInterrupt:
        sys.exit("upgrade_export.py: interrupted before the end: nothing written")
    finally:
        # The end is decided: a signal while TensorFlow shuts down changes nothing.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
