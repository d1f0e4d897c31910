"""Writing NEW: the kept nodes, the functions they call, their variables, and a signature."""

import os
import re

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from upgrade_export import go_on, is_pipeline, split_ref, tensor_ref
from upgrade_export.cut import copy_nodes, functions_used
from upgrade_export.old import asset_files
from upgrade_export.pipeline import run_front


def pruned_meta(meta, cut, batch_size, assets, imported=frozenset()):
    """A MetaGraphDef of the kept nodes, the functions they call, and the kept variables.

    batch_size, if given, is made unknown where the nodes' attributes hold it as
    a shape's first dimension (a TensorArray's element shape [32, 30]).
    imported: nodes already in the graph (the pipeline's tables), left out.
    """
    pruned = tf.compat.v1.MetaGraphDef()
    pruned.meta_info_def.CopyFrom(meta.meta_info_def)
    pruned.graph_def.versions.CopyFrom(meta.graph_def.versions)
    for kept in copy_nodes(meta, cut.keep - imported, pruned.graph_def, assets, cut.assets):
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
    old, cut, inputs = job.old, job.cut, job.inputs
    meta, signature = old.meta, old.signature
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
            if variable_def.HasField("save_slice_info_def"):
                # A part of a partitioned variable: saved as a slice of the whole.
                info = tf.compat.v1.Variable.SaveSliceInfo(
                    save_slice_info_def=variable_def.save_slice_info_def
                )
                variable._set_save_slice_info(info)
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
            pruned_meta(meta, cut, batch_size, old.assets, imported),
            input_map=input_map,
            clear_devices=True,
        )
        variables = tf.compat.v1.global_variables()
        if variables:
            tf.compat.v1.train.Saver(variables).restore(sess, old.checkpoint)
            load_averages(sess, old.checkpoint, job.averages)
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


def load_averages(sess, checkpoint, averages):
    """Loads the moving averages of the graph's variables from the checkpoint into them.

    averages: {a variable's name: its moving average's name in the checkpoint}.
    """
    if averages:
        variables = {v.op.name: v for v in tf.compat.v1.global_variables()}
        saver = tf.compat.v1.train.Saver({averages[n]: variables[n] for n in averages})
        saver.restore(sess, checkpoint)


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


def pipeline_left(path):
    """The pipeline's ops in the export at path (datasets, iterators, queues, readers),
    in its graph or its functions."""
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        (meta,) = saved_model_pb2.SavedModel.FromString(f.read()).meta_graphs
    functions = meta.graph_def.library.function
    nodes = [*meta.graph_def.node, *(node for f in functions for node in f.node_def)]
    return sorted({node.op for node in nodes if is_pipeline(node.op)})


def kilobytes(paths):
    """The size of these files and folders, in KB."""
    sizes = [
        os.path.getsize(os.path.join(top, n))
        for path in paths
        for top, _, names in (os.walk(path) if os.path.isdir(path) else [("", [], [path])])
        for n in names
    ]
    return f"{sum(sizes) / 1024:.0f} KB"
