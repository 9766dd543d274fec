"""The ``ferlib predict`` and ``ferlib export`` subcommands (parsers and handlers).

Kept apart from :mod:`ferlib.cli` so that the deployment commands can grow without touching
the training ones; :func:`add_deploy_parsers` adds them to the main parser.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ferlib.cli._common import add_command, positive_int
from ferlib.errors import FerlibError


def add_deploy_parsers(commands) -> None:
    """Add ``predict`` and ``export`` to the main parser's subparsers action."""

    def command(name: str, help_text: str, examples: str) -> argparse.ArgumentParser:
        return add_command(commands, name, help_text, examples)

    predict = command(
        "predict",
        "Detect faces in photos or videos and classify their expressions with a checkpoint.",
        """
        ferlib predict photo.jpg --model runs/demo/best.ckpt --out predictions/
        ferlib predict a.jpg b.png clip.mp4 --model runs/demo/best.ckpt --out predictions/ --every 5 --smooth 0.2
        ferlib predict --webcam --model runs/demo/best.ckpt
        """,
    )
    predict.add_argument("paths", nargs="*", metavar="PATH", help="images and videos (.mp4, .avi, .mov, ...)")
    predict.add_argument(
        "--model", required=True, metavar="CKPT", help="a ferlib checkpoint (e.g. runs/demo/best.ckpt)"
    )
    predict.add_argument("--out", default="predictions", help="output folder (default predictions/)")
    predict.add_argument("--webcam", action="store_true", help="live loop on camera 0 (needs GUI OpenCV)")
    predict.add_argument("--camera", type=int, default=0, help="camera index for --webcam (default 0)")
    predict.add_argument("--every", type=int, default=3, help="detect faces every K-th video frame (default 3)")
    predict.add_argument(
        "--smooth", type=float, default=0.3, help="EMA weight of the newest frame's probabilities, (0, 1] (default 0.3)"
    )
    predict.add_argument("--image-size", type=positive_int, default=None, help="override the checkpoint's input size")
    predict.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, cuda:N or mps")
    predict.add_argument("--no-progress", action="store_true")

    export = command(
        "export",
        "Export a checkpoint to ONNX, optionally int8-quantised, and check it against PyTorch.",
        """
        ferlib export runs/demo/best.ckpt --onnx runs/demo/model.onnx --check
        ferlib export runs/demo/best.ckpt --onnx runs/demo/model.onnx --int8
        """,
    )
    export.add_argument("checkpoint", metavar="CKPT")
    export.add_argument("--onnx", required=True, metavar="OUT.onnx", help="the ONNX file to write")
    export.add_argument(
        "--int8", action="store_true", help="also write OUT.int8.onnx (static int8, calibrated on SynthFER)"
    )
    export.add_argument("--check", action="store_true", help="compare ONNX Runtime with PyTorch on SynthFER inputs")
    export.add_argument("--exporter", default="auto", choices=("auto", "torchscript", "dynamo"))
    export.add_argument("--image-size", type=positive_int, default=None, help="override the checkpoint's input size")


def cmd_predict(args) -> int:
    from ferlib.deploy.predictor import load_predictor
    from ferlib.deploy.video import predict_paths, predict_webcam

    if not args.paths and not args.webcam:
        raise FerlibError("give at least one image or video PATH, or --webcam")
    predictor = load_predictor(args.model, device=args.device, image_size=args.image_size)
    if args.webcam:
        predict_webcam(predictor, camera=args.camera, every=args.every, smooth=args.smooth)
        if not args.paths:
            return 0

    def report(result: dict) -> None:
        if "faces" in result:
            faces = ", ".join(f"{f['emotion']} {f['probability']:.2f}" for f in result["faces"])
            print(f"{result['source']}: {len(result['faces'])} face(s): {faces}")
        else:
            print(
                f"{result['source']}: {result['frames']} frames, {result['tracks']} track(s), "
                f"{result['frames_per_s']:.1f} frames/s"
            )
        print("  wrote " + ", ".join(result["outputs"]))

    results, failures = predict_paths(
        args.paths,
        predictor,
        args.out,
        every=args.every,
        smooth=args.smooth,
        progress=not args.no_progress,
        on_result=report,
    )
    if failures:
        done = f"{len(results)} of {len(args.paths)} inputs done; " if results else ""
        raise FerlibError(done + "; ".join(failures))
    return 0


def cmd_export(args) -> int:
    from ferlib.data.synth import SynthFER
    from ferlib.deploy.export import export_onnx, onnx_parity, quantize_onnx
    from ferlib.deploy.predictor import load_predictor

    predictor = load_predictor(args.checkpoint, device="cpu", image_size=args.image_size)
    model = predictor.model
    shape = predictor.model_input_shape  # the centre crop's size for a model trained on crops
    note = ""
    if predictor.crop_fraction is not None:
        whole = "x".join(map(str, predictor.image_size))
        note = f"; trained on crops: give it the centre {shape[-2]}x{shape[-1]} of {whole} faces"
    out = Path(args.onnx)
    export_onnx(model, out, shape, exporter=args.exporter)
    print(f"wrote {out} (input [batch, {', '.join(map(str, shape))}]{note})")
    real = None
    if args.check or args.int8:
        side = shape[-1]
        task = "static" if predictor.kind != "video" else "video-basic"
        options = {"frames": predictor.frames} if predictor.kind == "video" else {}
        real = SynthFER(
            "val",
            size=128 if task == "static" else 32,
            task=task,
            image_size=side,
            rgb=predictor.channels == 3,
            **options,
        )
    if args.check:
        import torch

        generator = torch.Generator().manual_seed(0)
        random_diff = onnx_parity(model, out, torch.rand(16, *shape, generator=generator))
        real_diff = onnx_parity(model, out, real)
        print(f"parity: max |logit difference| {random_diff:.2e} on random inputs, {real_diff:.2e} on SynthFER")
        if max(random_diff, real_diff) > 1e-4:
            out.unlink(missing_ok=True)
            raise FerlibError(f"ONNX output differs from PyTorch by {max(random_diff, real_diff):.2e} (> 1e-4)")
    if args.int8:
        from ferlib.deploy.export import compare_quantized

        int8 = out.with_name(out.stem + ".int8.onnx")
        quantize_onnx(out, int8, calibration=real)
        stats = compare_quantized(out, int8, real)
        print(
            f"wrote {int8}: accuracy {stats['accuracy_int8']:.3f} vs {stats['accuracy_float']:.3f} float on "
            f"{stats['n']} SynthFER val samples, agreement {stats['agreement']:.3f}, "
            f"speed-up x{stats['speedup']:.2f}, size {stats['size_int8_bytes'] / 1e6:.2f} MB"
        )
    return 0
