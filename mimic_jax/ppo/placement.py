"""Where the trainer's arrays live: the one module that knows the device layout of the training carry.

Layout (``TrainCarry``): the learner state (parameters, normalizer, optimizer) is one array replicated over
the mesh of all devices (every process supplies its own devices' copies; with one device it is simply on
that device); the environments are one ``BatchState`` per local device, committed to it; the host key is
on the first local device. A rollout on device i gives per-device arrays that :meth:`Placement.sharded`
joins into one array sharded over the mesh, the input of the SPMD learner step.

Saved layout (:meth:`Placement.saved`): with several processes no process holds the whole carry, so a
checkpoint stores the environments as one array per leaf with a leading device axis, sharded over the mesh
(each process writes its own devices' part) and the host key replicated; with one process the carry is saved
as it is.

The trainer, the checkpoint restore (:meth:`Placement.abstract_carry`) and the training CLI use this
module instead of rebuilding the layout themselves.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P, SingleDeviceSharding

AXIS = "devices"


class Placement:
    """The mesh of the devices a trainer uses and the local devices this process drives."""

    def __init__(self, num_devices: int = 0, devices=None):
        devices = devices or (jax.devices() if jax.process_count() > 1 else jax.local_devices())
        self.devices = list(devices[: num_devices or len(devices)])
        self.local_devices = [d for d in self.devices if d.process_index == jax.process_index()]
        if not self.local_devices:
            raise ValueError(f"process {jax.process_index()} owns none of the {len(self.devices)} devices")
        self.index = [self.devices.index(d) for d in self.local_devices]  # global index of each local device
        self.mesh = Mesh(np.array(self.devices), (AXIS,))

    @property
    def first(self):
        return self.local_devices[0]

    @property
    def multi(self) -> bool:
        return len(self.devices) > 1

    def learner_sharding(self):
        """Replicated over the mesh with several devices; the one device otherwise."""
        return NamedSharding(self.mesh, P()) if self.multi else SingleDeviceSharding(self.first)

    def put_learner(self, tree):
        """The learner state in its layout (fresh, strongly typed, committed leaves; replicated if several)."""
        tree = jax.tree.map(lambda x: fresh(x, self.first), tree)
        return self.replicated([jax.device_put(tree, d) for d in self.local_devices]) if self.multi else tree

    def replicate(self, tree):
        """Same value on every device of the mesh."""
        return self.replicated([jax.device_put(tree, d) for d in self.local_devices])

    def replicated(self, per_device):
        """This process's per-device copies of one value -> one replicated array over all devices."""
        sharding = NamedSharding(self.mesh, P())

        def join(*xs):
            if isinstance(xs[0], jax.core.Tracer):  # under jax.eval_shape (abstract_carry): shapes are enough
                return xs[0]
            return jax.make_array_from_single_device_arrays(xs[0].shape, sharding, list(xs))
        return jax.tree.map(join, *per_device)

    def sharded(self, per_device, axis: int):
        """This process's per-device arrays -> one array over all devices, sharded along ``axis``."""
        def join(*xs):
            shape = list(xs[0].shape)
            shape[axis] *= len(self.devices)
            spec = [None] * len(shape)
            spec[axis] = AXIS
            return jax.make_array_from_single_device_arrays(tuple(shape), NamedSharding(self.mesh, P(*spec)),
                                                            list(xs))
        return jax.tree.map(join, *per_device)

    def local(self, tree, device=None):
        """The copy of a (replicated) tree on ``device`` (default: the first local device)."""
        device = device or self.first
        return jax.tree.map(lambda x: on_device(x, device), tree)

    def abstract_carry(self, shapes):
        """Shapes, dtypes and shardings of a training carry (``train_state``, ``envs``, ``key``) in the layout."""
        def place(sharding):
            return lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding, weak_type=s.weak_type)

        envs = tuple(jax.tree.map(place(SingleDeviceSharding(d)), e) for e, d in zip(shapes.envs, self.local_devices))
        return shapes.replace(train_state=jax.tree.map(place(self.learner_sharding()), shapes.train_state), envs=envs,
                              key=jax.tree.map(place(SingleDeviceSharding(self.first)), shapes.key))

    # -- the layout of a checkpoint ---------------------------------------------------------------------
    @staticmethod
    def spans_processes() -> bool:
        return jax.process_count() > 1

    def saved(self, carry):
        """The carry in its saved layout (see the module docstring)."""
        if not self.spans_processes():
            return carry
        stacked = self.sharded([jax.tree.map(lambda x: x[None], e) for e in carry.envs], axis=0)
        return carry.replace(envs=(stacked,), key=self.replicate(carry.key))

    def from_saved(self, saved):
        """The saved layout -> the carry this process trains with (its devices' environments, its key)."""
        if not self.spans_processes():
            return saved
        envs = tuple(jax.tree.map(lambda x: on_device(x, d)[0], saved.envs[0]) for d in self.local_devices)
        return saved.replace(envs=envs, key=self.local(saved.key))

    def abstract_saved(self, shapes):
        """Shapes, dtypes and shardings of a carry (from :meth:`abstract_carry`) in its saved layout."""
        if not self.spans_processes():
            return shapes
        n = len(self.devices)

        def stack(s):
            spec = P(AXIS, *([None] * len(s.shape)))
            return jax.ShapeDtypeStruct((n, *s.shape), s.dtype, sharding=NamedSharding(self.mesh, spec),
                                        weak_type=s.weak_type)

        key = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=NamedSharding(self.mesh, P()),
                                                          weak_type=s.weak_type), shapes.key)
        return shapes.replace(envs=(jax.tree.map(stack, shapes.envs[0]),), key=key)


def host_copy(x):
    """A numpy copy of ``x``; for an array replicated over processes, this process's copy."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        x = x.addressable_shards[0].data
    return np.asarray(jax.device_get(x))


def fresh(x, device) -> jax.Array:
    """A distinct, strongly typed, committed copy of ``x`` (a weak type or an uncommitted array changes the
    signature of the jitted step: the log-std init and the normalizer's ``std_eps`` are weak). Donated
    buffers must be distinct too: initial states can alias (e.g. zeros shared by two fields)."""
    x = jnp.array(x, dtype=jnp.result_type(x), copy=True)
    return x if isinstance(x, jax.core.Tracer) or x.committed else jax.device_put(x, device)


def on_device(x, device):
    """The copy of a replicated array that lives on ``device``."""
    for shard in x.addressable_shards:
        if shard.device == device:
            return shard.data
    return jax.device_put(x, device)
