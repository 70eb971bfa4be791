"""Build fv's real-face action-unit motion (fv/assets/face_motion_ict.npz) from the ICT Face Model Light.

    python scripts/make_face_motion.py /path/to/ICT-FaceKit/FaceXModel [fv/assets/face_motion_ict.npz]

Source: ICT-FaceKit (github ICT-VGL/ICT-FaceKit, "ICT Face Model Light", MIT licence, (c) 2020 USC Institute
for Creative Technologies): a generic neutral head built from light-stage scans of real people and 53
expression blendshapes on its topology (26,719 vertices), with the vertex indices of the Multi-PIE 68
landmarks (dlib's 68 points). Each blendshape at weight 1 is the scanned posed extreme of its shape; its
README maps the FACS units onto the shapes. fv's action units (fv.data.synth_face.AUS) are, at intensity 1:

  AU1 browInnerUp_L+R   AU2 browOuterUp_L+R   AU4 browDown_L+R     AU5 eyeWide_L+R     AU6 cheekSquint_L+R
  AU7 eyeSquint_L+R     AU9 noseSneer_L+R (the scan's sneer raises the upper lip too, as AU9 + AU10 do)
  AU12 mouthSmile_L+R   AU15 mouthFrown_L+R   AU16 mouthLowerDown_L+R   AU20 mouthStretch_L+R
  AU23 mouthPress_L+R (the kit has no lip tightener; the lip pressor, AU24, is its nearest shape)
  AU26 0.6 jawOpen (jawOpen is AU27's full mouth stretch, a 3 cm chin drop; AU26's relaxed jaw drop is less)

Kept geometry (frontal orthographic view: image x = x, image y = -y): the face area (vertices 0-9408), each
eye hole closed by a fan from its rim's centre set 0.3 cm behind the rim (a widened eye then shows the photo's
own eye stretched), and the mouth's inside: the socket, gums and tongue, and the teeth from the second
bicuspids forward (the molars never show from the front). Written: rest [N, 3] float32 (cm), delta
[K, N, 3] float16 (cm at intensity 1, K = len(AUS)), tris [M, 3] int32, part [M] uint8 (0 skin, 1 eye fill,
2 socket, 3 gums and tongue, 4 teeth), landmarks [68] int32, aus (names), mouth_loop [L] int32 (the face
area's rim into the mouth).
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np

LANDMARKS = [1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272, 4088, 3443,
             268, 493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942, 4857, 1140, 2075, 1147,
             4269, 3360, 1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725, 3732, 5708, 5695, 2081,
             0, 4275, 6200, 6213, 6346, 6461, 5518, 5957, 5841, 5702, 5711, 5533, 6216, 6207, 6470, 5517, 5966]
AU_SHAPES = {
    "AU1": {"browInnerUp_L": 1, "browInnerUp_R": 1}, "AU2": {"browOuterUp_L": 1, "browOuterUp_R": 1},
    "AU4": {"browDown_L": 1, "browDown_R": 1}, "AU5": {"eyeWide_L": 1, "eyeWide_R": 1},
    "AU6": {"cheekSquint_L": 1, "cheekSquint_R": 1}, "AU7": {"eyeSquint_L": 1, "eyeSquint_R": 1},
    "AU9": {"noseSneer_L": 1, "noseSneer_R": 1}, "AU12": {"mouthSmile_L": 1, "mouthSmile_R": 1},
    "AU15": {"mouthFrown_L": 1, "mouthFrown_R": 1}, "AU16": {"mouthLowerDown_L": 1, "mouthLowerDown_R": 1},
    "AU20": {"mouthStretch_L": 1, "mouthStretch_R": 1}, "AU23": {"mouthPress_L": 1, "mouthPress_R": 1},
    "AU26": {"jawOpen": 0.6},
}
FACE = range(0, 9409)
SOCKET, GUMS = range(11248, 13294), range(14062, 17039)
TEETH = [range(17607, 18679), range(19814, 20884)]     # upper and lower, second bicuspid to second bicuspid


def read_obj(path: Path, faces: bool = False):
    verts, polys = [], []
    for line in path.open():
        if line.startswith("v "):
            verts.append([float(x) for x in line.split()[1:4]])
        elif faces and line.startswith("f "):
            polys.append([int(t.split("/")[0]) - 1 for t in line.split()[1:]])
    return (np.asarray(verts), polys) if faces else np.asarray(verts)


def triangles(polys, keep: set[int]) -> list[list[int]]:
    out = []
    for f in polys:
        if all(v in keep for v in f):
            out += [[f[0], f[i], f[i + 1]] for i in range(1, len(f) - 1)]
    return out


def rim_loops(polys) -> list[list[int]]:
    """The boundary loops (edges of one polygon only) of a set of polygons, longest first."""
    count = collections.Counter(tuple(sorted((f[i], f[(i + 1) % len(f)]))) for f in polys for i in range(len(f)))
    adj = collections.defaultdict(list)
    for (a, b), c in count.items():
        if c == 1:
            adj[a].append(b)
            adj[b].append(a)
    seen, loops = set(), []
    for s in adj:
        if s in seen:
            continue
        loop, prev, cur = [s], None, s
        seen.add(s)
        while True:
            nxt = [v for v in adj[cur] if v != prev and v not in seen]
            if not nxt:
                break
            prev, cur = cur, nxt[0]
            loop.append(cur)
            seen.add(cur)
        loops.append(loop)
    return sorted(loops, key=len, reverse=True)


def build(model: Path) -> dict[str, np.ndarray]:
    from fv.data.synth_face import AUS
    rest, polys = read_obj(model / "generic_neutral_mesh.obj", faces=True)
    shapes = {n: read_obj(model / f"{n}.obj") - rest for n in sorted({s for m in AU_SHAPES.values() for s in m})}
    delta = np.stack([sum(w * shapes[n] for n, w in AU_SHAPES[au].items()) for au in AUS])   # [K, V, 3]
    face_polys = [f for f in polys if max(f) < FACE.stop]
    loops = rim_loops(face_polys)          # outer rim, mouth, two eyes (ICT-FaceKit README: the face area)
    mouth, eyes = loops[1], loops[2:4]
    parts = [(0, set(FACE)), (2, set(SOCKET)), (3, set(GUMS)), (4, set(TEETH[0]) | set(TEETH[1]))]
    tris, part = [], []
    for p, keep in parts:
        t = triangles(polys, keep)
        tris += t
        part += [p] * len(t)
    rest, delta = list(rest), [d for d in delta.transpose(1, 0, 2)]   # per vertex, to append the fans' centres
    for loop in eyes:                       # a fan closing each eye hole, behind the rim
        c = len(rest)
        rest.append(np.mean([rest[v] for v in loop], 0) - [0, 0, 0.3])
        delta.append(np.mean([delta[v] for v in loop], 0))
        tris += [[c, loop[i], loop[(i + 1) % len(loop)]] for i in range(len(loop))]
        part += [1] * len(loop)
    rest, delta, tris = np.asarray(rest), np.stack(delta, 1), np.asarray(tris)
    used = np.unique(tris)                  # keep only the vertices of kept triangles, renumbered
    index = np.full(len(rest), -1)
    index[used] = np.arange(len(used))
    return {"rest": rest[used].astype(np.float32), "delta": delta[:, used].astype(np.float16),
            "tris": index[tris].astype(np.int32), "part": np.asarray(part, np.uint8),
            "landmarks": index[LANDMARKS].astype(np.int32), "mouth_loop": index[mouth].astype(np.int32),
            "aus": np.array(AUS)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", type=Path, help="ICT-FaceKit's FaceXModel folder (the .obj files)")
    ap.add_argument("out", type=Path, nargs="?", default=Path("fv/assets/face_motion_ict.npz"))
    args = ap.parse_args(argv)
    if not (args.model / "generic_neutral_mesh.obj").is_file():
        sys.exit(f"{args.model}: no generic_neutral_mesh.obj there (ICT-FaceKit's FaceXModel folder)")
    arrays = build(args.model)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out}: {len(arrays['rest'])} vertices, {len(arrays['tris'])} triangles, "
          f"{args.out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
