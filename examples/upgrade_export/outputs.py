"""The model's outputs, where OLD has no signature to say them: a checkpoint, a frozen graph.

The training loss says them. It is what the gradients start from. The
batch's components it reads (an iterator's, a queue's, a placeholder's) are
the model's inputs where they meet its weights, and its labels where they do
not; the model's outputs are what the loss reads, computed from the inputs,
where the labels come in (the logits). Then come what is computed from those
alone and read by nothing (an Estimator head's predictions). A graph with no
loss (a frozen graph) offers its ends instead: what the input reaches and
nothing reads.
"""

import collections
import re

from tensorflow.python.framework import op_def_registry

from upgrade_export import DEQUEUE, GET_NEXT, is_pipeline, split_ref

# Where a batch enters the model.
INPUTS = GET_NEXT | DEQUEUE | {"Placeholder"}
VARIABLES = {"VariableV2", "Variable", "VarHandleOp"}
# What a variable's value goes through, unchanged, to the ops that use it
# (a while loop's Enter, the parts of a partitioned variable put together).
READING = {"Identity", "ReadVariableOp", "Enter", "RefEnter", "Snapshot", "Cast"}
READING |= {"ConcatV2", "Concat", "Pack"}
# Ops whose output depends on a tensor's shape, not its values.
SHAPES = {"Shape", "ShapeN", "Size", "Rank"}
# tf.gradients' first op fills a tensor of the loss's shape with ones; the ops
# that read it are named after the loss: gradients/LOSS_grad/...
GRADIENTS = re.compile(r"^((?:.*/)?gradients(?:_\d+)?)/(Fill|grad_ys_\d+)$")
NOT_OUTPUT = re.compile(r"Summary|^(NoOp|Assert|Print|PrintV2|Const|Placeholder)$|Save|Restore")
IN_GRADIENTS = re.compile(r"(^|/)gradients(_\d+)?/")
# Ops that only reshape their first input: an output they give is named after it.
SAME_VALUES = {"Identity", "ExpandDims", "Reshape", "Squeeze"}


class Graph:
    """A GraphDef's nodes, and who reads whom."""

    def __init__(self, graph_def):
        self.nodes = {node.name: node for node in graph_def.node}
        self.readers = collections.defaultdict(set)  # tensor -> nodes that read it
        self.given = collections.defaultdict(set)  # node -> its tensors that are read
        self.read = set()  # nodes read by any node, as data or as a control input
        for node in graph_def.node:
            for ref in node.input:
                name, index, control = split_ref(ref)
                self.read.add(name)
                if not control:
                    self.readers[f"{name}:{index}"].add(node.name)
                    self.given[name].add(f"{name}:{index}")

    def inputs(self, name):
        """The tensors a node reads (not its control inputs)."""
        refs = self.nodes[name].input
        return [f"{n}:{i}" for n, i, control in map(split_ref, refs) if not control]

    def after(self, tensors, within=None, through_shapes=False):
        """The nodes that depend on these tensors' values (or shapes too), within a set."""
        reached = set()
        stack = [reader for tensor in tensors for reader in self.readers[tensor]]
        while stack:
            name = stack.pop()
            if name in reached or (within is not None and name not in within):
                continue
            if self.nodes[name].op in SHAPES and not through_shapes:
                continue
            reached.add(name)
            stack.extend(r for t in self.outputs(name) for r in self.readers[t])
        return reached

    def before(self, names):
        """The nodes these depend on, themselves included, down to the inputs and variables."""
        reached, stack = set(), list(names)
        while stack:
            name = stack.pop()
            if name in reached or name not in self.nodes:
                continue
            reached.add(name)
            if self.nodes[name].op not in INPUTS | VARIABLES:
                stack.extend(split_ref(t)[0] for t in self.inputs(name))
        return reached

    def outputs(self, name):
        """The tensors a node gives: those its op defines, and those read of it."""
        count = len(output_types(self.nodes[name]) or [None])
        return sorted(self.given[name] | {f"{name}:{i}" for i in range(count)})


def output_types(node):
    """The dtypes of a node's outputs, from its op's definition (None for an op unknown here)."""
    op = op_def_registry.get(node.op)
    if op is None:
        return None
    types = []
    for arg in op.output_arg:
        count = node.attr[arg.number_attr].i if arg.number_attr else 1
        if arg.type_list_attr:
            types += list(node.attr[arg.type_list_attr].list.type)
        else:
            types += [arg.type or node.attr[arg.type_attr].type] * count
    return types


def choose_outputs(graph_def):
    """({key: tensor}, the line that says why), or (None, why they cannot be told)."""
    graph = Graph(graph_def)
    losses = training_losses(graph)
    if losses:
        read = read_by_loss(graph, losses)
        if not read:
            return None, "its training loss reads no tensor computed from the input but its labels"
        computed = computed_from(graph, read)
        keys = named(graph, read + computed)
        said = [f"{key} ({tensor})" for key, tensor in keys.items()]
        line = f"outputs: {', '.join(said[: len(read)])}, what the training loss reads of the model"
        if computed:
            line += f"; {', '.join(said[len(read) :])}, computed from it alone"
    else:
        ends = graph_ends(graph)
        if not ends:
            return None, "it has no training loss, and no end that the input reaches"
        keys = named(graph, ends)
        said = [f"{key} ({tensor})" for key, tensor in keys.items()]
        line = f"outputs: {', '.join(said)}, the graph's ends: what the input reaches and nothing reads"
    return keys, line + "; --output KEY=TENSOR chooses others"


def training_losses(graph):
    """The tensors the gradients start from."""
    losses = set()
    for node in graph.nodes.values():
        fill = GRADIENTS.match(node.name)
        if node.op != "Fill" or not fill:
            continue
        for reader in graph.readers[f"{node.name}:0"]:
            named = re.match(re.escape(fill.group(1)) + r"/(.+?)_grad/", reader)
            if named and named.group(1) in graph.nodes:
                losses.add(f"{named.group(1)}:0")
    return sorted(losses)


def read_by_loss(graph, losses):
    """The tensors the losses read from the model: computed from its inputs, not its labels."""
    loss_side = graph.before(split_ref(loss)[0] for loss in losses)
    components = {
        tensor
        for name in loss_side
        for tensor in graph.inputs(name)
        if graph.nodes[split_ref(tensor)[0]].op in INPUTS
    }
    weights = {}
    features = {
        component
        for component in components
        if any(
            is_weight(graph, split_ref(t)[0], weights)
            for name in graph.after([component], loss_side)
            for t in graph.inputs(name)
        )
    }
    labels = components - features
    if not features or not labels:
        return []
    from_labels = graph.after(labels, loss_side)
    on_labels = graph.after(labels, through_shapes=True)  # Anything that depends on them.
    from_features = graph.after(features, loss_side)
    read = set()
    for name in from_labels:
        for tensor in graph.inputs(name):
            if split_ref(tensor)[0] in from_features and split_ref(tensor)[0] not in on_labels:
                read.add(unwrapped(graph, tensor, from_labels))
    return sorted(read)


def unwrapped(graph, tensor, loss):
    """The tensor a loss function reshaped before reading it (its own scope's Reshape)."""
    while True:
        node = graph.nodes[split_ref(tensor)[0]]
        scope = node.name.rpartition("/")[0]
        made_by_loss = scope and any(n == scope or n.startswith(scope + "/") for n in loss)
        if node.op not in SAME_VALUES or not made_by_loss:
            return tensor
        tensor = graph.inputs(node.name)[0]


def is_weight(graph, name, known, seen=()):
    """Whether a node gives a variable's value, as it is (memoized in known)."""
    if name not in known:
        node = graph.nodes[name]
        if node.op in VARIABLES:
            known[name] = True
        elif node.op not in READING or name in seen:
            return False
        else:
            sources = [graph.nodes[split_ref(t)[0]] for t in graph.inputs(name)]
            weights = [is_weight(graph, s.name, known, (*seen, name)) for s in sources]
            known[name] = any(weights) and all(
                w or s.op == "Const" for w, s in zip(weights, sources)
            )
    return known[name]


def computed_from(graph, outputs):
    """The tensors computed from these outputs alone that nothing reads (predictions)."""
    producers = {split_ref(t)[0] for t in outputs}
    found = []
    for name in sorted(graph.after(outputs, through_shapes=True)):
        if not is_end(graph, name):
            continue
        # Walking back from it, nothing but the outputs and constants.
        stack, seen, alone = [name], set(), True
        while stack and alone:
            node = graph.nodes[stack.pop()]
            if node.name in seen or node.name in producers:
                continue
            seen.add(node.name)
            alone = node.op not in INPUTS | VARIABLES and not is_pipeline(node.op)
            stack.extend(split_ref(t)[0] for t in graph.inputs(node.name))
        if alone:
            found += graph.outputs(name)
    return found


def graph_ends(graph):
    """The tensors the input reaches that nothing reads: a frozen graph's outputs."""
    inputs = [t for t in graph.readers if graph.nodes[split_ref(t)[0]].op in INPUTS]
    return [
        t
        for name in sorted(graph.after(inputs))
        if is_end(graph, name)
        for t in graph.outputs(name)
    ]


def is_end(graph, name):
    """Whether a node could be an output: read by nothing, computing (not training,
    summarizing, saving or feeding a pipeline), its op known here."""
    op = graph.nodes[name].op
    definition = op_def_registry.get(op)
    return not (
        name in graph.read
        or IN_GRADIENTS.search(name)
        or NOT_OUTPUT.search(op)
        or is_pipeline(op)
        or definition is None
        or definition.is_stateful
    )


def named(graph, tensors):
    """Keys for tensors, from their names: dense/BiasAdd:0 -> dense; probabilities:0 -> probabilities."""
    keys = {}
    for tensor in dict.fromkeys(tensors):
        key = base = key_of(graph, tensor)
        number = 1
        while key in keys:
            key, number = f"{base}_{number}", number + 1
        keys[key] = tensor
    return keys


def key_of(graph, tensor):
    name, index, _ = split_ref(tensor)
    node = graph.nodes[name]
    parts = name.split("/")

    def op_named(part):
        return re.fullmatch(re.escape(node.op) + r"(_\d+)?", part, re.IGNORECASE)

    if node.op in SAME_VALUES and op_named(parts[-1]) and graph.inputs(name):
        return key_of(graph, graph.inputs(name)[0])
    while len(parts) > 1 and op_named(parts[-1]):
        parts.pop()
    key = parts[-1]
    if op_named(key):  # tf.nn.softmax(x): Softmax -> softmax
        key = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", node.op).lower()
    key = re.sub(r"\W", "_", key)
    return f"{key}_{index}" if index else key
