"""SHA-256 fingerprints of SynthFER sets, to prove that a speed-up changed no output byte.

    python benchmarks/synth_fingerprint.py --out before.json      # before the change
    python benchmarks/synth_fingerprint.py --compare before.json  # after: exit 1 on any change

Each set is generated with ``cache=False``; its fingerprint is the SHA-256 of the uint8 image
array's bytes, of every other stored array (labels, landmarks, AUs, nuisances...: dtype, shape
and bytes, in key order), and of the labels and per-sample metadata as JSON. The sets: static
faces (``--static-size``, default 500) and clips (``--video-size``, default 50) of every video
task, each with the presets easy, default and wild, plus RGB, odd-sized and supersampled variants.
Bytes are the same on one machine and library build; another CPU or torch build may round
differently, so compare fingerprints made on the same machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time

import numpy as np

from ferlib.data.synth import SynthFER


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def fingerprint(**kwargs) -> dict[str, str]:
    data = SynthFER(cache=False, **kwargs)
    arrays = data._data
    others = hashlib.sha256()
    for key in sorted(arrays):
        if key == "images":
            continue
        array = np.ascontiguousarray(arrays[key])
        others.update(f"{key}:{array.dtype.str}:{array.shape}".encode())
        others.update(array.tobytes())
    records = [{"label": int(data.labels[i]), "meta": _jsonable(data.meta(i))} for i in range(len(data))]
    meta_json = json.dumps(records, sort_keys=True).encode()
    return {
        "images": hashlib.sha256(np.ascontiguousarray(arrays["images"]).tobytes()).hexdigest(),
        "arrays": others.hexdigest(),
        "labels_meta_json": hashlib.sha256(meta_json).hexdigest(),
    }


def configurations(static_size: int, video_size: int) -> dict[str, dict]:
    sets = {}
    for preset in ("default", "easy", "wild"):
        sets[f"static/{preset}"] = {"task": "static", "size": static_size, "preset": preset}
        for task in ("video-basic", "video-subtle", "smile-dynamics"):
            sets[f"{task}/{preset}"] = {"task": task, "size": video_size, "preset": preset}
    sets["static/default/rgb"] = {"task": "static", "size": static_size // 4, "rgb": True}
    sets["static/default/64px-supersample3"] = {
        "task": "static",
        "size": static_size // 4,
        "image_size": 64,
        "supersample": 3,
    }
    sets["video-basic/default/rgb-supersample2"] = {
        "task": "video-basic",
        "size": video_size // 4,
        "rgb": True,
        "supersample": 2,
    }
    # Odd sizes: a face's pixel count is no multiple of the vector width.
    sets["static/wild/37px-rgb"] = {
        "task": "static",
        "size": static_size // 4,
        "image_size": 37,
        "rgb": True,
        "preset": "wild",
    }
    sets["video-subtle/wild/50px"] = {
        "task": "video-subtle",
        "size": video_size // 2,
        "image_size": 50,
        "preset": "wild",
    }
    sets["smile-dynamics/default/23px-supersample3"] = {
        "task": "smile-dynamics",
        "size": video_size // 2,
        "image_size": 23,
        "supersample": 3,
    }
    return sets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--static-size", type=int, default=500)
    parser.add_argument("--video-size", type=int, default=50)
    parser.add_argument("--split", default="train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the fingerprints to this JSON file")
    parser.add_argument("--compare", help="compare with the fingerprints in this JSON file")
    args = parser.parse_args()
    results = {}
    for name, kwargs in configurations(args.static_size, args.video_size).items():
        start = time.perf_counter()
        results[name] = fingerprint(split=args.split, seed=args.seed, **kwargs)
        print(f"{name:<40s} images {results[name]['images'][:16]}  ({time.perf_counter() - start:.1f} s)", flush=True)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=1, sort_keys=True)
    if args.compare:
        with open(args.compare) as handle:
            reference = json.load(handle)
        changed = [
            f"{name}: {part}"
            for name, parts in results.items()
            for part, digest in parts.items()
            if reference.get(name, {}).get(part) != digest
        ]
        print("identical to", args.compare if not changed else "CHANGED: " + "; ".join(changed))
        return 1 if changed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
