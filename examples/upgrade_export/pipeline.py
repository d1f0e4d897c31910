"""Serving from what the pipeline took: its work on each element, run on a request's rows.

A tf.data pipeline of from_tensor_slices, map()s and one batch() is carried
over. A queue runners' pipeline never is: its readers and queues stay behind,
and so does its work on each example, said in one line (random work above all).
"""

import collections
import re

import numpy as np
import tensorflow as tf
from tensorflow.python.framework import function_def_to_graph

from upgrade_export import BATCHING, DEQUEUE, split_ref, tensor_ref
from upgrade_export.cut import Input, copy_nodes, functions_used, initializers, table_initializers
from upgrade_export.old import asset_files

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
    if cut.nodes[get_next].op in DEQUEUE:
        return None, queue_pipeline(cut, get_next)
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


def queue_pipeline(cut, dequeue):
    """What a queue's pipeline is made of, and the random work it does on each example."""
    queue = cut.nodes[split_ref(cut.nodes[dequeue].input[0])[0]]
    stack = [
        ref
        for node in cut.nodes.values()
        if node.op.startswith("QueueEnqueue") and split_ref(node.input[0])[0] == queue.name
        for ref in node.input[1:]
    ]
    seen, sources, random = set(), set(), []
    while stack:
        name = split_ref(stack.pop())[0]
        if name in seen:
            continue
        seen.add(name)
        node = cut.nodes[name]
        if node.op.startswith(("ReaderRead", "QueueDequeue")):  # Before it: another pipeline.
            sources.add(cut.nodes[split_ref(node.input[0])[0]].op)
            continue
        if RANDOM.search(node.op):
            parts = name.split("/")
            random.append(next((p for p in parts if p.startswith("random_")), parts[0]))
        stack.extend(node.input)
    left = sorted(sources) + [queue.op]
    made = f"queue runners: {', '.join(left)} stay{'s' * (len(left) == 1)} behind"
    if random:
        scopes = sorted(set(random))
        made += f"; {', '.join(scopes)} draw{'s' if len(scopes) == 1 else ''} random numbers"
    return made


def key_type(signature, key):
    """The dtype and shape a signature input declares."""
    info = signature.inputs[key]
    return tf.as_dtype(info.dtype), tf.TensorShape(info.tensor_shape)


def run_front(meta, job, placeholders):
    """Builds the pipeline's work on the request's rows; returns {get_next output: its batch}."""
    front, cut = job.front, job.cut
    graph = tf.compat.v1.get_default_graph()
    tables = tf.compat.v1.GraphDef()
    tables.versions.CopyFrom(meta.graph_def.versions)
    list(copy_nodes(meta, front.nodes, tables, job.old.assets, front.assets))
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
