"""Reading OLD: its graph as a MetaGraphDef (never run here), the signature NEW serves, its weights.

OLD is a SavedModel (its serving graph and serving_default), a training
checkpoint (the graph of its .meta, the values of its .index and .data), or a
frozen GraphDef (weights folded into constants). A checkpoint and a frozen graph
have no signature: their outputs are named with --output or chosen from the
graph (outputs.py), and the placeholders that feed their iterators stand for
a signature's inputs.
"""

import collections
import difflib
import glob
import os
import re

import tensorflow as tf
from google.protobuf import text_format
from google.protobuf.message import DecodeError
from tensorflow.core.framework import graph_pb2, variable_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from upgrade_export import MAKE_ITERATOR, Refusal, split_ref
from upgrade_export.outputs import choose_outputs, output_types

# What is read of OLD: its name as given, its kind ("export", "checkpoint" or
# "frozen graph") and the path read (paths.Where's); its graph; the signature
# NEW serves; the prefix of its variables' values and the folder of its
# assets (or None); and how its outputs were chosen, where they were (one
# line), else None.
Old = collections.namedtuple("Old", "name kind path meta signature checkpoint assets chosen")


def read(where, asked):
    """OLD, located by paths.locate(); asked: the outputs --output names, {key: tensor}."""
    if where.kind == "export":
        meta, signature = read_export(where.path)
        variables = os.path.join(where.path, "variables", "variables")
        old = Old(
            where.given,
            "export",
            where.path,
            meta,
            signature,
            variables if os.path.isfile(variables + ".index") else None,
            os.path.join(where.path, "assets"),
            None,
        )
    elif where.kind == "checkpoint":
        meta = read_meta(where.path)
        check_checkpoint(meta, where.path)
        old = Old(where.given, "checkpoint", where.path, meta, None, where.path, None, None)
    else:
        meta = meta_graph_pb2.MetaGraphDef(graph_def=read_graph(where.path))
        old = Old(where.given, "frozen graph", where.path, meta, None, None, None, None)
    nodes = {node.name: node for node in old.meta.graph_def.node}
    if asked:
        for key, tensor in asked.items():
            check_tensor(nodes, key, tensor)
        outputs, chosen = asked, None
    elif old.signature is None:
        outputs, chosen = choose_outputs(old.meta.graph_def)
        if outputs is None:
            raise Refusal(
                f"{where.given} has no signature, and its graph does not tell its model's "
                f"outputs ({chosen}): name them with --output KEY=TENSOR"
            )
    if old.signature is None or asked:
        signature = made_signature(nodes, old.signature, outputs)
        old = old._replace(signature=signature, chosen=chosen)
    # The shapes recorded when the graph was built: TensorFlow infers them
    # again on import, and refuses those it now infers otherwise (a TF 1.x
    # batch norm's gradients), or that set_shape() narrowed (a batch of 16).
    for node in old.meta.graph_def.node:
        if "_output_shapes" in node.attr:
            del node.attr["_output_shapes"]
    return old


def files(old):
    """The files OLD is made of."""
    if old.kind == "export":
        return [os.path.join(top, n) for top, _, names in os.walk(old.path) for n in names]
    if old.kind == "checkpoint":
        return glob.glob(glob.escape(old.path) + ".*")
    return [old.path]


def moving_averages(old, cut):
    """{a variable of the model: the name of its moving average in OLD's checkpoint}, where it has one.

    Those of tf.train.ExponentialMovingAverage, under its default name.
    """
    if not old.checkpoint:
        return {}
    stored = {name for name, _ in tf.train.list_variables(old.checkpoint)}
    found = {}
    for variable_def in cut.variables + cut.converted:
        name = split_ref(variable_def.variable_name)[0]
        average = f"{name}/ExponentialMovingAverage"
        if average in stored and not variable_def.HasField("save_slice_info_def"):
            found[name] = average
    return found


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


def read_meta(prefix):
    """The MetaGraphDef of a checkpoint: its .meta file."""
    try:
        with open(prefix + ".meta", "rb") as f:
            meta = meta_graph_pb2.MetaGraphDef.FromString(f.read())
    except DecodeError:
        raise Refusal(f"{prefix}.meta does not parse as a MetaGraphDef") from None
    if not plausible(meta.graph_def):
        raise Refusal(f"{prefix}.meta holds no graph")
    return meta


def plausible(graph_def):
    """Whether a GraphDef parsed from bytes of unknown kind reads as one: nodes with op types."""
    return bool(graph_def.node) and all(
        node.name and re.fullmatch(r"[A-Za-z][\w>]*", node.op) for node in graph_def.node
    )


def read_graph(path):
    """A GraphDef file, binary or text; anything else is said in one line."""
    if os.path.basename(path) == "saved_model.pb":
        raise Refusal(f"{path} is a SavedModel's: give the folder that holds it")
    with open(path, "rb") as f:
        data = f.read()
    graph = graph_pb2.GraphDef()
    try:
        graph.ParseFromString(data)
    except DecodeError:
        graph.Clear()
    if not plausible(graph):
        graph.Clear()
        try:
            text_format.Parse(data.decode(), graph)
        except (UnicodeDecodeError, text_format.ParseError):
            graph.Clear()
    if plausible(graph):
        return graph
    for kind, what in (
        (
            saved_model_pb2.SavedModel,
            "a SavedModel's saved_model.pb: give the folder that holds it",
        ),
        (meta_graph_pb2.MetaGraphDef, "a MetaGraphDef: give the prefix of its checkpoint"),
    ):
        try:
            parsed = kind.FromString(data)
        except DecodeError:
            continue
        graphs = [m.graph_def for m in getattr(parsed, "meta_graphs", [parsed])]
        if graphs and all(plausible(g) for g in graphs):
            raise Refusal(f"{path} is {what}")
    raise Refusal(
        f"{path} is not a GraphDef (neither binary nor text), a SavedModel or a checkpoint"
    )


def saver_keys(meta):
    """The names under which the graph's Saver restores variables from a checkpoint."""
    scope = meta.saver_def.restore_op_name.partition("/")[0] + "/"
    nodes = {node.name: node for node in meta.graph_def.node}
    keys = set()
    for node in nodes.values():
        if node.op in ("RestoreV2", "Restore", "RestoreSlice") and node.name.startswith(scope):
            names = nodes[split_ref(node.input[1])[0]]
            if names.op == "Const":
                keys.update(n.decode() for n in tf.make_ndarray(names.attr["value"].tensor).flat)
    return keys


def check_checkpoint(meta, prefix):
    """Refuses a checkpoint whose values are not those of its .meta's variables."""
    try:
        stored = dict(tf.train.list_variables(prefix))
    except (tf.errors.OpError, ValueError) as error:
        line = str(error).strip().splitlines()[0]
        raise Refusal(f"{prefix} does not read as a checkpoint: {line}") from None
    missing = sorted(saver_keys(meta) - set(stored))
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise Refusal(
            f"{prefix} does not match its .meta: its graph restores {missing[0]}{more}, "
            f"which the checkpoint does not hold"
        )
    nodes = {node.name: node for node in meta.graph_def.node}
    for variable_def in variable_defs(meta):
        node = nodes.get(split_ref(variable_def.variable_name)[0])
        if node is None or "shape" not in node.attr:
            continue
        key, shape = node.name, [d.size for d in node.attr["shape"].shape.dim]
        if variable_def.HasField("save_slice_info_def"):  # A part of a partitioned variable.
            info = variable_def.save_slice_info_def
            key, shape = info.full_name, list(info.full_shape)
        if key in stored and list(stored[key]) != shape:
            raise Refusal(
                f"{prefix} does not match its .meta: {key} is {tuple(shape)} in its graph "
                f"and {tuple(stored[key])} in the checkpoint"
            )


def check_tensor(nodes, key, tensor):
    """Refuses an --output whose tensor the graph does not have, naming those close to it."""
    name, index, _ = split_ref(tensor)
    if name in nodes and index < output_count(nodes[name]):
        return
    close = difflib.get_close_matches(name, list(nodes), n=3)
    hint = f" (close: {', '.join(close)})" if close else ""
    raise Refusal(f"--output {key}={tensor}: the graph has no tensor {tensor}{hint}")


def output_count(node):
    types = output_types(node)
    return len(types) if types is not None else 1


def made_signature(nodes, signature, outputs):
    """The signature NEW serves, where OLD has none (or --output names other outputs).

    Its inputs: OLD's signature's, or the placeholders its iterators are started
    with, as a signature of the same graph would have had them.
    """
    made = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    if signature is not None:
        made.inputs.MergeFrom(signature.inputs)
        made.method_name = signature.method_name or made.method_name
    else:
        stack = [n.name for n in nodes.values() if n.op == MAKE_ITERATOR]
        seen = set()
        while stack:
            name = stack.pop()
            if name in seen or name not in nodes:
                continue
            seen.add(name)
            node = nodes[name]
            if node.op == "Placeholder":
                info = made.inputs[name]
                info.name, info.dtype = f"{name}:0", node.attr["dtype"].type
                info.tensor_shape.CopyFrom(node.attr["shape"].shape)
            stack.extend(split_ref(ref)[0] for ref in node.input)
    for key, tensor in outputs.items():
        name, index, _ = split_ref(tensor)
        info = made.outputs[key]
        info.name = f"{name}:{index}"
        types = output_types(nodes[name]) or []
        info.dtype = types[index] if index < len(types) else 0
        shapes = (
            nodes[name].attr["_output_shapes"].list.shape
            if "_output_shapes" in nodes[name].attr
            else []
        )
        if index < len(shapes):
            info.tensor_shape.CopyFrom(shapes[index])
        else:
            info.tensor_shape.unknown_rank = True
    return made


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


# What a loader needs of the collections beside the variables: the ops it runs
# once the variables are restored (a main op, tables' initializers), and assets.
LOADER_COLLECTIONS = {
    "saved_model_main_op", "legacy_init_op", "main_op", "table_initializer", "asset_filepaths",
}  # fmt: skip


def loadable_copy(old, path):
    """Writes at path a SavedModel of OLD's serving graph alone, which TensorFlow 2 loads.

    The training side (gradients, the optimizer's updates) is left out: a TF 1.x
    graph can hold forms there that TF 2 refuses. Its variables (a
    checkpoint's files, linked) and assets are OLD's own.
    """
    meta = old.meta
    copy = saved_model_pb2.SavedModel(saved_model_schema_version=1)
    kept = copy.meta_graphs.add()
    kept.meta_info_def.CopyFrom(meta.meta_info_def)
    del kept.meta_info_def.tags[:]
    kept.meta_info_def.tags.append("serve")
    if meta.HasField("saver_def"):  # (Not a frozen graph's.)
        kept.saver_def.CopyFrom(meta.saver_def)
    kept.signature_def["serving_default"].CopyFrom(old.signature)
    roots = [kept.saver_def.restore_op_name, kept.saver_def.filename_tensor_name]
    roots += [
        info.name for info in [*old.signature.inputs.values(), *old.signature.outputs.values()]
    ]
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
    if old.checkpoint:
        os.mkdir(os.path.join(path, "variables"))
        for name in glob.glob(glob.escape(old.checkpoint) + ".*"):
            suffix = name[len(old.checkpoint) :]  # .index, .data-00000-of-00001
            if suffix != ".meta":
                link = os.path.join(path, "variables", "variables" + suffix)
                os.symlink(os.path.abspath(name), link)
    if old.assets and os.path.isdir(old.assets):
        os.symlink(os.path.abspath(old.assets), os.path.join(path, "assets"))
