"""The video pipeline of ``ferlib predict``: frames/s at 640x480 with one face, and peak memory
for a short against a long video.

Run: ``python benchmarks/video_pipeline.py [--seconds 10] [--minutes 1 10] [--memory-fps 10]``

The test videos are written with OpenCV into a temporary folder: scikit-image's astronaut face
(cropped, 160x160) drifting over a textured 640x480 background at 30 frames/s. A cnn_small
checkpoint (untrained: speed and memory do not depend on the weights) classifies the faces.

* Speed: :func:`ferlib.deploy.video.predict_video` end to end (decode, detect every k-th frame on a
  320-pixel-wide copy, track, classify, smooth, write the timeline CSV; with and without the
  annotated MP4 and plot), for several k.
* Memory: each video is processed in a fresh subprocess that reports its peak resident set
  size (``ru_maxrss``) and its RSS before the video was opened; streaming should make the
  10-minute peak match the 1-minute one (target from issue #8: within 10%).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def astronaut_face(size: int = 160) -> np.ndarray:
    from skimage import data

    image = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    face = image[40:200, 145:305]  # the face with some margin (Haar box 177,66,95x95)
    return cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)


def write_video(path: Path, seconds: float, fps: float = 30.0, size=(640, 480)) -> Path:
    width, height = size
    face = astronaut_face()
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(60, 200, (height, width, 3), dtype=np.uint8), (0, 0), 6)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    frames = int(round(seconds * fps))
    for t in range(frames):
        frame = background.copy()
        x = int((width - 160) / 2 + 150 * np.sin(2 * np.pi * t / (4 * fps)))
        y = int((height - 160) / 2 + 40 * np.cos(2 * np.pi * t / (6 * fps)))
        frame[y : y + 160, x : x + 160] = face
        writer.write(frame)
    writer.release()
    return path


def checkpoint(folder: Path) -> Path:
    import torch

    import ferlib

    torch.manual_seed(0)
    path = folder / "cnn_small.ckpt"
    ferlib.save_checkpoint(path, ferlib.create_model("cnn_small"), train_config={"input_shape": [1, 48, 48]})
    return path


def child(video: str, ckpt: str, out: str, every: int) -> None:
    """Run in a subprocess: process one video, print peak RSS as JSON."""
    from ferlib.deploy.predictor import load_predictor
    from ferlib.deploy.video import predict_video
    from ferlib.efficiency import current_rss_bytes

    predictor = load_predictor(ckpt)
    before = current_rss_bytes()
    result = predict_video(video, predictor, out, every=every, progress=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps({"frames": result["frames"], "rss_before": before, "peak_rss": peak, "fps": result["frames_per_s"]})
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the speed-test video")
    parser.add_argument("--every", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--minutes", type=float, nargs="*", default=[1.0, 10.0])
    parser.add_argument("--memory-fps", type=float, default=10.0, help="frame rate of the memory-test videos")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2], int(args.child[3]))
        return
    from _hardware import hardware_line

    from ferlib.deploy.predictor import load_predictor
    from ferlib.deploy.video import predict_video

    print(hardware_line())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = checkpoint(tmp)
        predictor = load_predictor(ckpt)
        video = write_video(tmp / "speed.mp4", args.seconds)
        print(f"speed: {args.seconds:.0f} s of 640x480 at 30 frames/s, one face, cnn_small, torch threads 1")
        for every in args.every:
            for full in (False, True):
                result = predict_video(
                    video, predictor, tmp / "out", every=every, progress=False, write_video=full, plot=full
                )
                outputs = "CSV + annotated MP4 + plot" if full else "CSV only"
                rows = result["rows"] / result["frames"]
                print(
                    f"  detect every {every}: {result['frames_per_s']:6.1f} frames/s ({outputs}; "
                    f"a face in {rows:.0%} of frames)",
                    flush=True,
                )
        for minutes in args.minutes:
            long_video = write_video(tmp / f"long{minutes:g}.mp4", minutes * 60, fps=args.memory_fps)
            command = [sys.executable, __file__, "--child", str(long_video), str(ckpt), str(tmp / "out"), "3"]
            result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
            print(
                f"memory: {minutes:g} min at {args.memory_fps:g} frames/s ({result['frames']} frames): peak RSS "
                f"{result['peak_rss'] / 2**20:.0f} MiB (RSS before the video {result['rss_before'] / 2**20:.0f} MiB), "
                f"{result['fps']:.1f} frames/s",
                flush=True,
            )
            os.remove(long_video)


if __name__ == "__main__":
    main()
