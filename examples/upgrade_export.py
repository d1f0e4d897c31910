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
    """OLD_EXPORT and NEW_EXPORT, checked as far as can be without TensorFlow."""
    if len(argv) != 2 or not all(argv):
        raise Refusal(f"usage: python3 {sys.argv[0]} OLD_EXPORT NEW_EXPORT")
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
    return old, new


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
import shutil
import tempfile
import types

import numpy as np

# Before the import: no C++ info or warning logs (a batch size tried may fail).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.framework import variable_pb2
from tensorflow.core.protobuf import saved_model_pb2

tf.get_logger().setLevel("ERROR")  # The compat.v1 calls below are meant.

GET_NEXT = {"IteratorGetNext", "IteratorGetNextSync"}
MAKE_ITERATOR = "MakeIterator"  # An initializer, named or not, has this type.
# Datasets whose elements have the components of the dataset they read, in
# order: through them an iterator output is traced to the placeholder it came from.
SAME_COMPONENTS = {
    "BatchDataset", "BatchDatasetV2", "PaddedBatchDataset", "PaddedBatchDatasetV2",
    "RepeatDataset", "ShuffleDataset", "ShuffleDatasetV2", "ShuffleDatasetV3",
    "ShuffleAndRepeatDataset", "ShuffleAndRepeatDatasetV2", "PrefetchDataset",
    "TakeDataset", "SkipDataset", "CacheDataset", "CacheDatasetV2",
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
    return meta, meta.signature_def["serving_default"]


def variable_defs(meta):
    for name in ("variables", "local_variables"):
        for value in meta.collection_def[name].bytes_list.value:
            yield variable_pb2.VariableDef.FromString(value)


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
            if name in self.keep:
                continue
            if "Iterator" in node.op or node.op.endswith(("Dataset", "DatasetV2", "DatasetV3")):
                raise Refusal(
                    f"the signature's outputs use the iterator other than through its "
                    f"get_next (op {name}, of type {node.op}): this program cannot cut there"
                )
            self.keep.add(name)
            stack.extend(node.input)


def describe_iterator(cut, get_next):
    """How the old export's users had to start the iterator a get_next reads."""
    iterator = cut.nodes[split_ref(cut.nodes[get_next].input[0])[0]]
    inits = sorted(
        n.name
        for n in cut.nodes.values()
        if n.op == MAKE_ITERATOR and split_ref(n.input[1])[0] == iterator.name
    )
    if inits:
        how = f"initializer {', '.join(inits)} ({MAKE_ITERATOR})"
    elif iterator.op.startswith("IteratorFromStringHandle"):
        how = f"a feedable iterator, chosen by the string fed to {iterator.input[0]}"
    elif iterator.op == "OneShotIterator":
        how = "a one-shot iterator, which starts itself"
    else:
        how = "no initializer found"
    return f"iterator {iterator.name} ({iterator.op}), {how}"


def source_placeholder(cut, get_next, index):
    """The placeholder an iterator output was sliced from, if the graph says."""
    iterator = split_ref(cut.nodes[get_next].input[0])[0]
    inits = [
        n
        for n in cut.nodes.values()
        if n.op == MAKE_ITERATOR and split_ref(n.input[1])[0] == iterator
    ]
    if len(inits) != 1:
        return None
    dataset = cut.nodes[split_ref(inits[0].input[0])[0]]
    while dataset.op in SAME_COMPONENTS:
        dataset = cut.nodes[split_ref(dataset.input[0])[0]]
    if dataset.op not in ("TensorSliceDataset", "TensorDataset") or index >= len(dataset.input):
        return None
    source = cut.nodes[split_ref(dataset.input[index])[0]]
    return source.name if source.op == "Placeholder" else None


def new_inputs(cut, signature):
    """The new signature's inputs: (key, old tensor, dtype, shape), and what is dropped."""
    inputs, dropped = [], []
    for get_next in sorted(cut.used):
        attrs = cut.nodes[get_next].attr
        for index, (dtype, shape) in enumerate(
            zip(attrs["output_types"].list.type, attrs["output_shapes"].list.shape)
        ):
            entry = (f"{get_next}:{index}", tf.as_dtype(dtype), tf.TensorShape(shape))
            if index in cut.used[get_next]:
                inputs.append([source_placeholder(cut, get_next, index), *entry])
            else:
                dropped.append(entry)
    for tensor in sorted(cut.fed_used):
        info = signature.inputs[cut.fed[tensor]]
        inputs.append(
            [
                cut.fed[tensor],
                tensor,
                tf.as_dtype(info.dtype),
                tf.TensorShape(info.tensor_shape),
            ]
        )
    # An output not traced to a placeholder is named by its position.
    for number, entry in enumerate(inputs):
        if entry[0] is None or [e[0] for e in inputs].count(entry[0]) > 1:
            entry[0] = "input" if len(inputs) == 1 else f"input_{number}"
    return [tuple(entry) for entry in inputs], dropped


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


def pruned_meta(meta, cut, batch_size):
    """A MetaGraphDef of the kept nodes and variables; batch_size made unknown in shapes."""
    pruned = tf.compat.v1.MetaGraphDef()
    pruned.meta_info_def.CopyFrom(meta.meta_info_def)
    pruned.graph_def.versions.CopyFrom(meta.graph_def.versions)
    pruned.graph_def.library.CopyFrom(meta.graph_def.library)
    for node in meta.graph_def.node:
        if node.name not in cut.keep:
            continue
        kept = pruned.graph_def.node.add()
        kept.CopyFrom(node)
        del kept.input[:]  # Without control edges to what is cut away,
        kept.input.extend(r for r in node.input if not r.startswith("^") or r[1:] in cut.keep)
        if "_class" in kept.attr:
            del kept.attr["_class"]  # and without colocation with it (a variable rebuilt).
        if batch_size and node.name in cut.model:
            # Shapes inferred from the old batch size: the graph infers them
            # again; and a TensorArray's element shape [32, 30] becomes [?, 30].
            if "_output_shapes" in kept.attr:
                del kept.attr["_output_shapes"]
            for value in kept.attr.values():
                for shape in [
                    *value.list.shape,
                    *([value.shape] if value.HasField("shape") else []),
                ]:
                    if shape.dim and shape.dim[0].size == batch_size:
                        shape.dim[0].size = -1
    for variable_def in cut.variables:
        names = {"variables"} | ({"trainable_variables"} if variable_def.trainable else set())
        for name in names:
            pruned.collection_def[name].bytes_list.value.append(variable_def.SerializeToString())
    return pruned


def write_new(path, job, fixes=(), batch_size=None, pinned=None):
    """Writes the cut graph at path; returns its inputs' tensor names by key.

    fixes: batch_constants(), for inputs of any batch size in place of
    batch_size; pinned: the one batch size the inputs declare instead.
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
        for key, tensor, dtype, shape in inputs:
            name = key if key not in cut.nodes else f"upgraded/{key}"
            batched = shape.rank and split_ref(tensor)[0] in cut.used  # An iterator output.
            if batched and (pinned or batch_size and shape[0] == batch_size):
                shape = tf.TensorShape([pinned]).concatenate(shape[1:])
            placeholders[key] = input_map[tensor] = tf.compat.v1.placeholder(dtype, shape, name)
        with tf.name_scope("upgraded/batch_size"):
            batched = next((p for p in placeholders.values() if p.shape.rank), None)
            for name, kind, value in fixes:
                batch = tf.shape(batched, out_type=tf.int64)[:1]
                if kind == "rows":
                    shape = tf.concat([batch, value.shape[1:]], 0)
                    input_map[f"{name}:0"] = tf.fill(shape, tf.constant(value.flat[0]))
                else:
                    input_map[f"{name}:0"] = tf.concat([tf.cast(batch, value.dtype), value[1:]], 0)
        tf.compat.v1.train.import_meta_graph(
            pruned_meta(meta, cut, batch_size), input_map=input_map, clear_devices=True
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
        builder = tf.compat.v1.saved_model.Builder(path)
        builder.add_meta_graph_and_variables(
            sess,
            ["serve"],
            {"serving_default": new_signature},
            strip_default_attrs=True,
        )
        builder.save()
        return {key: p.name for key, p in placeholders.items()}


def run_export(path, feeds):
    """Loads the export at path in a graph of its own; its outputs for feeds by tensor name."""
    go_on()
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
        outputs = meta.signature_def["serving_default"].outputs
        return sess.run({key: info.name for key, info in outputs.items()}, feeds)


def run_new(path, names, values):
    """The new export at path fed values by input key (names: their tensor names)."""
    return run_export(path, {names[key]: value for key, value in values.items()})


def sample(inputs, batch, rng):
    """A batch to check with: normal floats, integer ones (a valid id or length)."""
    values = {}
    for key, _, dtype, shape in inputs:
        dims = [batch if i == 0 else d or 10 for i, d in enumerate(shape)]
        if dtype.is_floating and dims:
            values[key] = rng.standard_normal(dims).astype(dtype.as_numpy_dtype)
        elif dtype.is_floating or dtype.is_integer:
            values[key] = np.ones(dims, dtype.as_numpy_dtype)
        else:
            values[key] = np.zeros(dims, dtype.as_numpy_dtype)
    return values


def dims(shape):
    return "of unknown shape" if shape.rank is None else str(tuple(shape.as_list()))


def largest_difference(a, b):
    return max(float(np.max(np.abs(a[k].astype(float) - b[k]), initial=0.0)) for k in a)


# ----------------------------------------------------------------------------
# The upgrade.


def report(job, dropped):
    old, cut, inputs = job.old, job.cut, job.inputs
    print(f"{old} reads its input through a tf.data iterator:")
    for get_next in sorted(cut.used):
        print(f"  {describe_iterator(cut, get_next)}")
    for key, tensor, dtype, shape in inputs:
        print(f"  kept:    {tensor} as input {key!r}: {dtype.name} {dims(shape)}")
    for tensor, dtype, shape in dropped:
        print(f"  dropped: {tensor}: {dtype.name} {dims(shape)}, which no output uses")
    unused = sorted(key for tensor, key in cut.fed.items() if tensor not in cut.fed_used)
    if unused:
        print(f"  dropped: signature inputs {', '.join(unused)}, which only feed the iterator")
    total = len(list(variable_defs(job.meta)))
    kept = len(cut.variables) + len(cut.converted)
    made = f"; {len(cut.converted)} reference ones made resource" if cut.converted else ""
    print(f"  variables: {kept} of {total}, the model's{made}")


def run_old(job, rng):
    """The old export fed a sample batch at its iterator's outputs: (batch, values, outputs).

    A batch size the graph holds shows in the outputs' shapes, or as the
    only size that runs.
    """
    shapes = [info.tensor_shape for info in job.signature.outputs.values()]
    declared = {s.dim[0].size for s in shapes if s.dim and s.dim[0].size > 0}
    errors = []
    for batch in list(declared) if len(declared) == 1 else [PROBE, *candidate_sizes(job.cut)]:
        values = sample(job.inputs, batch, rng)
        try:
            outputs = run_export(job.old, {tensor: values[key] for key, tensor, *_ in job.inputs})
            return batch, values, outputs
        except tf.errors.OpError as error:
            errors.append(error.message.strip().splitlines()[0])
    raise Refusal(f"{job.old} does not run on a sample batch: {errors[0]}")


def same_rows_at_other_sizes(path, names, values, outputs, extra):
    """Whether the export at path gives outputs' rows for the same rows in other batches.

    The batches: the sample with three more rows after it, and its first row alone.
    """
    for batch in (
        {key: np.concatenate([value, extra[key]]) for key, value in values.items()},
        {key: value[:1] for key, value in values.items()},
    ):
        try:
            got = run_new(path, names, batch)
        except (tf.errors.OpError, ValueError):
            return False
        for key, value in got.items():
            rows = min(np.shape(value)[:1] + np.shape(outputs[key])[:1], default=0)
            if (
                not np.ndim(value)
                or largest_difference({key: value[:rows]}, {key: outputs[key][:rows]}) > TOLERANCE
            ):
                return False
    return True


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
    return same_rows_at_other_sizes(path, names, values, got, extra)


def upgrade(old, new):
    meta, signature = read_export(old)
    cut = Cut(meta, signature)
    if not cut.used:
        raise Refusal(
            f"{old}: its signature's outputs do not go through a tf.data iterator once "
            f"its inputs are fed, so it serves as it is: there is nothing to upgrade"
        )
    inputs, dropped = new_inputs(cut, signature)
    job = types.SimpleNamespace(old=old, meta=meta, signature=signature, cut=cut, inputs=inputs)
    report(job, dropped)
    rng = np.random.default_rng(0)
    batch, values, expected = run_old(job, rng)
    extra = sample(inputs, 3, rng)
    try:
        staging = tempfile.mkdtemp(
            ".tmp", ".upgrade_export-", os.path.dirname(os.path.abspath(new))
        )
    except OSError as error:
        raise Refusal(f"cannot write beside {new}: {error.strerror}") from None
    try:
        # The model as it was; then, if it runs one batch size only, with the
        # constants that hold that size rebuilt from the input's.
        path = os.path.join(staging, "as_old")
        try:
            names = write_new(path, job)
            got = run_new(path, names, values)
        except (tf.errors.OpError, ValueError) as error:
            message = str(getattr(error, "message", error)).strip().splitlines()[0]
            raise Refusal(f"cannot rebuild the model without its iterator: {message}") from None
        difference = largest_difference(got, expected)
        print(f"check: old and new fed the same sample batch of {batch}: ", end="")
        print(f"largest difference {difference:.3g}")
        if not difference <= TOLERANCE:
            raise Refusal(f"the new export would compute other outputs: {new} not written")
        fixes = batch_constants(cut, batch)
        any_batch = os.path.join(staging, "any_batch")
        if same_rows_at_other_sizes(path, names, values, got, extra):
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
            print(
                f"batch size: {batch} only, as the old export: its graph holds {batch} "
                f"where this program cannot safely take it from the input"
            )
        if os.path.lexists(new):
            raise Refusal(f"{new} appeared while this ran: not replaced")
        go_on()
        os.rename(path, new)
    finally:
        shutil.rmtree(staging)
    keys = ", ".join(key for key, *_ in inputs) or "nothing"
    print(f"wrote {new}: its serving_default takes {keys}, with no iterator")


def main(argv):
    upgrade(*arguments(argv))


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
