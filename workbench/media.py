"""Writing generated media: mp4 (imageio-ffmpeg), PNG frames, wav (soundfile), with a JSON
sidecar that records the media contract and the parameters; reading conditioning images."""

from __future__ import annotations

import importlib.util
import json
import tempfile
from dataclasses import asdict, is_dataclass
from pathlib import Path

import numpy as np
import torch

from workbench.errors import ParameterError, WorkbenchError
from workbench.io import atomic_path, atomic_write_text

VIDEO_SUFFIXES = (".mp4", ".gif")
AUDIO_SUFFIXES = (".wav", ".flac")


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """[F,H,W,3] floats in [0,1] -> uint8."""
    return (frames.detach().cpu().clamp(0, 1).numpy() * 255).round().astype(np.uint8)


def write_video(frames: torch.Tensor, path: Path, fps: int) -> Path:
    import imageio.v2 as imageio

    path = Path(path)
    if path.suffix not in VIDEO_SUFFIXES:
        raise ParameterError(f"--out {path}: expected a video file ending in {' or '.join(VIDEO_SUFFIXES)}")
    if path.suffix == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise ParameterError(f"--out {path}: mp4 needs the imageio-ffmpeg package (a declared dependency: "
                             "pip install imageio-ffmpeg==0.8.1); or write a .gif, or PNGs with --frames-dir")
    with atomic_path(path) as tmp:
        # macro_block_size=1 keeps tiny test sizes (32x32) as they are.
        options = (dict(format="FFMPEG", fps=fps, macro_block_size=1) if path.suffix == ".mp4"
                   else dict(duration=1000 / fps, loop=0))  # Pillow's GIF writer takes ms per frame
        with imageio.get_writer(tmp, **options) as writer:
            for frame in to_uint8(frames):
                writer.append_data(frame)
    return path


def write_frames(frames: torch.Tensor, directory: Path) -> list[Path]:
    import imageio.v2 as imageio

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(to_uint8(frames)):
        with atomic_path(directory / f"frame_{i:04d}.png") as tmp:
            imageio.imwrite(tmp, frame, format="PNG")
        paths.append(directory / f"frame_{i:04d}.png")
    return paths


def write_audio(waveform: torch.Tensor, path: Path, sampling_rate: int) -> Path:
    """[C,T] floats -> a wav/flac file."""
    import soundfile as sf

    path = Path(path)
    if path.suffix not in AUDIO_SUFFIXES:
        raise ParameterError(f"--out {path}: expected an audio file ending in {' or '.join(AUDIO_SUFFIXES)}")
    with atomic_path(path) as tmp:
        sf.write(str(tmp), waveform.detach().cpu().float().numpy().T, sampling_rate,
                 format=path.suffix[1:].upper())
    return path


#: Sampling rates a browser's <audio> element decodes (Chromium refuses a 16 Hz wav:
#: DEMUXER_ERROR_NO_SUPPORTED_STREAMS); outside them a listening preview is resampled to PREVIEW_RATE.
PLAYABLE_RATES = (8000, 192000)
PREVIEW_RATE = 16000  # every browser decodes it; 3x smaller embedded in reports than 44.1 kHz


def preview_rate(sampling_rate: int) -> int:
    """The rate a listening preview is written at: the model's own when a browser plays it."""
    lo, hi = PLAYABLE_RATES
    return int(sampling_rate) if lo <= sampling_rate <= hi else PREVIEW_RATE


def resample(waveform: torch.Tensor, sampling_rate: int, rate: int) -> torch.Tensor:
    """[C,T] -> [C,T'] at `rate`, same duration (linear interpolation: for listening only)."""
    wave = waveform.detach().cpu().float()
    if rate == sampling_rate:
        return wave
    length = max(1, round(wave.shape[-1] * rate / sampling_rate))
    return torch.nn.functional.interpolate(wave[None], size=length, mode="linear", align_corners=True)[0]


def write_preview_audio(waveform: torch.Tensor, path: Path, sampling_rate: int) -> Path:
    """A wav a browser plays: the waveform resampled to `preview_rate(sampling_rate)`.

    For listening only: parity and goldens compare the tensors, never this file."""
    rate = preview_rate(sampling_rate)
    return write_audio(resample(waveform, sampling_rate, rate), path, rate)


def mux(video: Path, audio: Path, path: Path) -> Path:
    """One mp4 with `video`'s stream copied and `audio` encoded as AAC (imageio-ffmpeg's ffmpeg)."""
    import subprocess

    import imageio_ffmpeg

    with atomic_path(path) as tmp:
        command = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(video), "-i", str(audio),
                   "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", str(tmp)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise WorkbenchError(f"ffmpeg could not mux {video.name} and {audio.name}: {done.stderr.strip()}")
    return path


def write_joint(frames: torch.Tensor, waveform: torch.Tensor, path: Path, fps: float, sampling_rate: int,
                muxed: bool) -> list[Path]:
    """Video with its soundtrack: one muxed mp4, or the mp4 plus a wav of the same name."""
    path = Path(path)
    if path.suffix != ".mp4":
        raise ParameterError(f"--out {path}: a joint audio-video result is written as .mp4")
    if not muxed:
        return [write_video(frames, path, fps), write_audio(waveform, path.with_suffix(".wav"), sampling_rate)]
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        video = write_video(frames, Path(tmp) / "video.mp4", fps)
        audio = write_audio(waveform, Path(tmp) / "audio.wav", sampling_rate)
        return [mux(video, audio, path)]


# 8-bit modes that convert to RGB as they are; 16-bit and float modes ("I;16", "I", "F") would be clipped.
IMAGE_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr")


def load_image(source):
    """A conditioning image (file path or PIL image) as RGB, read the way the official examples do.

    Mirrors `diffusers.utils.load_image`: EXIF orientation applied, then converted to RGB.
    A missing or unreadable file, or a mode RGB conversion would distort, is a
    `ParameterError` that names the file.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(source, Image.Image):
        name, image = "(PIL image)", source
    elif isinstance(source, (str, Path)):
        name = str(source)
        if not Path(source).is_file():
            raise ParameterError(f"image {name}: no such file")
        try:
            image = Image.open(source)
            image.load()
        except Image.DecompressionBombError as exc:  # refused from its header, before any pixel is decoded
            raise ParameterError(f"image {name}: too large to decode safely: {exc}") from None
        except (UnidentifiedImageError, OSError) as exc:
            raise ParameterError(f"image {name}: cannot be read as an image ({exc})") from None
    else:
        raise ParameterError(f"image: expected a file path or a PIL image, got {type(source).__name__}")
    if image.mode not in IMAGE_MODES:
        raise ParameterError(f"image {name}: mode {image.mode!r} is not supported "
                             f"(expected an 8-bit image: {', '.join(IMAGE_MODES)})")
    return ImageOps.exif_transpose(image).convert("RGB")


def check_image(source) -> None:
    """The cheap part of `load_image`, from the file's header only: it exists, is an image, is
    not a decompression bomb, has a supported mode. Run before any model loads; `load_image`
    (at InputValidation) still decodes it and refuses damaged pixel data."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(source, (str, Path)):
        return
    name = str(source)
    if not Path(source).is_file():
        raise ParameterError(f"image {name}: no such file")
    try:
        with Image.open(source) as image:
            mode = image.mode
    except Image.DecompressionBombError as exc:
        raise ParameterError(f"image {name}: too large to decode safely: {exc}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ParameterError(f"image {name}: cannot be read as an image ({exc})") from None
    if mode not in IMAGE_MODES:
        raise ParameterError(f"image {name}: mode {mode!r} is not supported "
                             f"(expected an 8-bit image: {', '.join(IMAGE_MODES)})")


def describe_image(image) -> str:
    """A stable text for a PIL image in verdicts and sidecars: mode, size and a hash of its pixels."""
    import hashlib

    digest = hashlib.sha256(image.tobytes()).hexdigest()[:16]
    return f"PIL.Image(mode={image.mode}, size={image.width}x{image.height}, sha256={digest})"


def write_sidecar(path: Path, family: str, media, params) -> Path:
    meta = {"family": family, "media": asdict(media) if is_dataclass(media) else media,
            "parameters": params.to_json_dict()}
    return atomic_write_text(Path(str(path) + ".json"), json.dumps(meta, indent=2) + "\n")


def write_outputs(family, result, out: Path | None, frames_dir: Path | None) -> list[Path]:
    """Write the first sample of a generation as the family's media kind."""
    written: list[Path] = []
    sample = result.output[0]
    if family.output_kind == "frames":
        if out is not None:
            written.append(write_video(sample, Path(out), result.media.fps))
        if frames_dir is not None:
            written += write_frames(sample, Path(frames_dir))
    elif family.output_kind == "waveform":
        if out is not None:
            written.append(write_audio(sample, Path(out), result.media.sampling_rate))
    elif family.output_kind == "joint":
        media = result.media
        if out is not None:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            written += write_joint(sample, result.audio[0], Path(out), media.video.fps, media.audio.sampling_rate,
                                   media.muxed)
        if frames_dir is not None:
            written += write_frames(sample, Path(frames_dir))
    else:
        raise ParameterError(f"family {family.name}: output kind {family.output_kind!r} has no writer")
    if out is not None:
        written.append(write_sidecar(Path(out), family.name, result.media, result.params))
    return written
