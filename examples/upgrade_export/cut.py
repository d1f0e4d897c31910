"""Where the input pipeline meets the model: the nodes NEW keeps, and the inputs it takes.

The cut is where the model reads its batches: an iterator's get_next, or a
queue's dequeue of a batch. Walking back from the outputs, it stops there.
"""

import collections
import os
import re

import tensorflow as tf
from tensorflow.core.protobuf import queue_runner_pb2
from tensorflow.python.framework import op_def_registry

from upgrade_export import (
    BATCHING,
    DEQUEUE,
    GET_NEXT,
    MAKE_ITERATOR,
    SAME_COMPONENTS,
    Refusal,
    is_pipeline,
    split_ref,
    tensor_ref,
)
from upgrade_export.old import asset_files, variable_defs


class Cut:
    """The nodes the signature's outputs need, walked back to the cut.

    A walk stops at a get_next or a dequeue (noting which of its outputs are
    used) and at a signature input (fed, so what computes it is not needed).
    """

    def __init__(self, meta, signature):
        self.nodes = {node.name: node for node in meta.graph_def.node}
        self.fed = {info.name: key for key, info in signature.inputs.items()}
        self.keep = set()
        self.used = collections.defaultdict(set)  # get_next or dequeue -> output indices
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
        # The threads of the queue runners that fill each queue, where the graph says.
        self.threads = collections.Counter()
        if "queue_runners" in meta.collection_def:
            for value in meta.collection_def["queue_runners"].bytes_list.value:
                runner = queue_runner_pb2.QueueRunnerDef.FromString(value)
                self.threads[runner.queue_name] += len(runner.enqueue_op_name)

    def walk(self, refs):
        stack = [ref for ref in refs if ref]
        while stack:
            name, index, control = split_ref(stack.pop())
            node = self.nodes[name]
            if not control and f"{name}:{index}" in self.fed:
                self.fed_used.add(f"{name}:{index}")
                continue  # A new placeholder takes its place.
            if node.op in GET_NEXT | DEQUEUE:
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
            if is_pipeline(node.op):
                raise Refusal(
                    f"the outputs use the input pipeline other than through an iterator's "
                    f"get_next or a queue's dequeue of a batch (op {name}, of type {node.op}): "
                    f"this program cannot cut there"
                )
            self.keep.add(name)
            stack.extend(node.input)


def unknown_op(cut, library):
    """A node NEW would keep whose op this TensorFlow does not have: (op, node), or None."""
    functions = {f.signature.name for f in library.function}
    for name in sorted(cut.keep):
        op = cut.nodes[name].op
        if op not in functions and op_def_registry.get(op) is None:
            return op, name
    return None


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


def describe_cut(cut, name):
    """The iterator a get_next reads and how it was started, or the queue a dequeue reads."""
    if cut.nodes[name].op in GET_NEXT:
        return describe_iterator(cut, name)
    dequeue = cut.nodes[name]
    queue = cut.nodes[split_ref(dequeue.input[0])[0]]
    count = constant(cut, dequeue.input[1])
    rows = f"{count} rows" if count is not None else "batches"
    threads = cut.threads[queue.name]
    filled = f", filled by {threads} queue-runner thread{'s' * (threads > 1)}" if threads else ""
    return (
        f"queue {queue.name} ({queue.op}), read {rows} at a time by {name} ({dequeue.op}){filled}"
    )


def constant(cut, ref):
    """The value of a scalar constant a node reads, or None."""
    node = cut.nodes[split_ref(ref)[0]]
    if node.op != "Const":
        return None
    value = tf.make_ndarray(node.attr["value"].tensor)
    return value.item() if value.size == 1 else None


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


def components(cut, name):
    """The dtypes and shapes of what a get_next or a dequeue gives, and whether each is a batch."""
    node = cut.nodes[name]
    if node.op in DEQUEUE:  # Batches of the elements the queue holds, of their shapes.
        queue = cut.nodes[split_ref(node.input[0])[0]]
        types = node.attr["component_types"].list.type
        shapes = queue.attr["shapes"].list.shape if "shapes" in queue.attr else []
        if len(shapes) != len(types):
            return [(t, tf.TensorShape(None), True) for t in types]
        batch = tf.TensorShape([None])
        return [(t, batch.concatenate(tf.TensorShape(s)), True) for t, s in zip(types, shapes)]
    # A dataset that batches: the first dimension is the batch, whatever size
    # the iterator declares for it (a batch that drops its remainder).
    batches = any(dataset.op in BATCHING for dataset in datasets(cut, name))
    found = []
    for dtype, shape in zip(
        node.attr["output_types"].list.type, node.attr["output_shapes"].list.shape
    ):
        shape = tf.TensorShape(shape)
        batched = shape.rank is not None and shape.rank > 0 and (batches or not shape[0])
        if batched:
            shape = tf.TensorShape([None]).concatenate(shape[1:])
        found.append((dtype, shape, batched))
    return found


def column_name(cut, tensor):
    """The name of the feature column a component is read through (input_layer/NAME/...)."""
    names = set()
    for reader, index in cut.readers[split_ref(tensor)[0]]:
        if tensor_ref(cut.nodes[reader].input[index]) == tensor:
            found = re.search(r"(?:^|/)input_layer/([^/]+)/", reader)
            names |= {found.group(1)} if found else {None}
    return names.pop() if len(names) == 1 else None


def new_inputs(cut, signature):
    """The new signature's inputs (Input tuples), and the components of the batch dropped."""
    inputs, dropped = [], []
    for name in sorted(cut.used):
        for index, (dtype, shape, batched) in enumerate(components(cut, name)):
            entry = [None, f"{name}:{index}", tf.as_dtype(dtype), shape, batched]
            if index not in cut.used[name]:
                dropped.append(entry[1:4])
                continue
            # Named after the placeholder the component came from: by the
            # signature's key for it if it had one, or by its own name; else
            # after the feature column that reads it.
            source = source_placeholder(cut, name, index)
            entry[0] = cut.fed.get(source) or (source and split_ref(source)[0])
            entry[0] = entry[0] or column_name(cut, entry[1])
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


def copy_nodes(meta, names, graph_def, folder, assets):
    """Copies the nodes of these names into graph_def: what the new export holds of them.

    Without control edges to nodes left out, nor colocation with them (a
    variable rebuilt); an asset's path becomes the file's in OLD's assets
    folder, which the builder copies into the new export's.
    """
    paths = {split_ref(t)[0]: os.path.join(folder, f) for t, f in assets.items()}
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
