"""Ray casting for the simulator: the first triangle each ray meets, from one of two backends.

- ``open3d`` (the default): open3d's ``RaycastingScene`` (Embree's BVH), the library made for the job and
  the fastest on CPU.
- ``torch``: a caster in plain torch (raycast_torch.py) that runs on CPU or CUDA, for machines without
  open3d, e.g. the GPU machines training runs on, where it generates the training data on the GPU itself.

Both answer :meth:`RayCaster.cast_rays` as ``RaycastingScene.cast_rays`` does (the part of it the simulator
uses): the nearest hit along each ray, both faces of a triangle count.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Primitive id of a ray that meets nothing (open3d's invalid id).
MISS = np.uint32(2 ** 32 - 1)
BACKENDS = ("open3d", "torch")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class RayHits:
    """The first hit of each of N rays.

    t_hit: (N,) float32 ray parameter of the hit (the distance for unit directions); inf for a miss.
    primitive_ids: (N,) uint32 index of the triangle hit; :data:`MISS` for a miss.
    primitive_normals: (N, 3) float32 unit normal of that triangle, (v1 - v0) x (v2 - v0) normalised; 0 for a miss.
    """

    t_hit: np.ndarray
    primitive_ids: np.ndarray
    primitive_normals: np.ndarray


class RayCaster:
    """A triangle mesh that rays are cast against (built from (V, 3) vertices and (T, 3) triangles)."""

    def cast_rays(self, rays: np.ndarray, max_distance: float = np.inf) -> RayHits:
        """First hits of ``rays`` (N, 6) float32: origin xyz, direction xyz.

        max_distance: hits farther than this may be reported as misses (a backend may skip far triangles);
        nearer hits are always exact.
        """
        raise NotImplementedError


class Open3dRayCaster(RayCaster):
    """open3d's RaycastingScene (Embree's BVH on CPU threads)."""

    def __init__(self, vertices: np.ndarray, triangles: np.ndarray):
        try:
            import open3d as o3d
        except ImportError:
            raise ValueError("the open3d ray caster needs open3d, which is not installed: `pip install open3d`, "
                             "or choose the torch ray caster (--raycaster torch)") from None
        self._o3d = o3d
        self._scene = o3d.t.geometry.RaycastingScene()
        self._scene.add_triangles(o3d.core.Tensor(np.asarray(vertices, np.float32)),
                                  o3d.core.Tensor(np.asarray(triangles).astype(np.uint32)))

    def cast_rays(self, rays: np.ndarray, max_distance: float = np.inf) -> RayHits:
        hits = self._scene.cast_rays(self._o3d.core.Tensor(np.ascontiguousarray(rays, np.float32)))
        return RayHits(hits["t_hit"].numpy(), hits["primitive_ids"].numpy(), hits["primitive_normals"].numpy())


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when torch sees a CUDA GPU, else "cpu"; "cuda" without one is an error."""
    import torch

    if device not in DEVICES:
        raise ValueError(f"unknown ray casting device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device cuda: torch {torch.__version__} sees no CUDA GPU (no GPU on this machine, or a "
                         "CPU-only torch build); use --device cpu or --device auto, or run on a machine with a GPU "
                         "and a CUDA build of torch")
    return device


@dataclass(frozen=True)
class RayCasterChoice:
    """Which backend casts the simulator's rays, and (torch) on which device: "auto", "cpu" or "cuda"."""

    backend: str = "open3d"
    device: str = "auto"

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown ray caster {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        if self.device not in DEVICES:
            raise ValueError(f"unknown ray casting device {self.device!r}; choose one of {', '.join(DEVICES)}")

    def resolved(self) -> "RayCasterChoice":
        """This choice as it runs here (torch: "auto" becomes "cuda" or "cpu"); ValueError naming the fix
        if it cannot run here (no open3d, no GPU)."""
        if self.backend == "torch":
            return RayCasterChoice(self.backend, resolve_device(self.device))
        Open3dRayCaster(np.zeros((3, 3), np.float32), np.array([[0, 1, 2]]))
        return self

    def build(self, vertices: np.ndarray, triangles: np.ndarray) -> RayCaster:
        if self.backend == "torch":
            from sparsekd_core.data.sim.raycast_torch import TorchRayCaster

            return TorchRayCaster(vertices, triangles, device=self.device)
        return Open3dRayCaster(vertices, triangles)

    def __str__(self) -> str:
        return self.backend if self.backend == "open3d" else f"{self.backend} ({self.device})"
