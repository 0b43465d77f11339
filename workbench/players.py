"""Side-by-side media players as self-contained HTML: reference | native | diff videos that
play, pause and seek together, and reference | native audio players.

Used by the parity report (embedded as data URIs, so the page still travels alone) and by
notebook 04 (`IPython.display.HTML`). The media are previews for eyes and ears: video is
encoded from the captured frames, audio resampled to a rate browsers play
(`workbench.media.write_preview_audio`); the compared tensors are never touched.
"""

from __future__ import annotations

import base64
import html
import tempfile
import uuid
from pathlib import Path

import torch

#: Players are drawn at least this wide (tiny 32x32 test frames would be thumbnails).
MIN_WIDTH = 192

_SYNC_JS = """
<script>
(function () {
  const group = document.querySelectorAll('video[data-sync="%(group)s"]');
  if (!group.length) return;
  const lead = group[0];
  const rest = Array.from(group).slice(1);
  let busy = false;
  function follow(fn) { if (busy) return; busy = true; try { rest.forEach(fn); } finally { busy = false; } }
  lead.addEventListener('play', () => follow(v => { v.currentTime = lead.currentTime; v.play(); }));
  lead.addEventListener('pause', () => follow(v => { v.pause(); v.currentTime = lead.currentTime; }));
  lead.addEventListener('seeked', () => follow(v => { v.currentTime = lead.currentTime; }));
  lead.addEventListener('ratechange', () => follow(v => { v.playbackRate = lead.playbackRate; }));
})();
</script>
"""


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def frames_of_item0(t: torch.Tensor) -> torch.Tensor:
    """[B,F,H,W,C] (or [F,H,W,C], [H,W,C]) -> [F,H,W,C] of batch item 0, float."""
    per_item = t.shape[-4] if t.dim() >= 4 else 1
    return t.detach().float().cpu().reshape(-1, *t.shape[-3:])[:per_item]


def waveform_of_item0(t: torch.Tensor) -> torch.Tensor:
    """[B,C,T] (or [C,T], [T]) -> [C,T] of batch item 0."""
    t = t.detach().float().cpu()
    if t.dim() == 1:
        return t[None]
    return t.reshape(-1, *t.shape[-2:])[0]


def normalised_diff(reference: torch.Tensor, native: torch.Tensor) -> tuple[torch.Tensor, float]:
    """|reference - native| (max over RGB) scaled so its largest value is white; and that value."""
    diff = (reference.double() - native.double()).abs().amax(-1, keepdim=True)
    top = float(diff.max())
    scaled = diff / top if top > 0 else diff
    return scaled.expand(*diff.shape[:-1], 3).float(), top


def encode_mp4(frames: torch.Tensor, fps: float) -> bytes:
    from workbench.media import write_video

    with tempfile.TemporaryDirectory() as tmp:
        path = write_video(frames, Path(tmp) / "preview.mp4", int(round(fps)) or 1)
        return path.read_bytes()


def encode_wav(waveform: torch.Tensor, sampling_rate: int) -> bytes:
    from workbench.media import write_preview_audio

    with tempfile.TemporaryDirectory() as tmp:
        return write_preview_audio(waveform, Path(tmp) / "preview.wav", int(sampling_rate)).read_bytes()


def video_players_html(reference: torch.Tensor, native: torch.Tensor, fps: float | None = None) -> str:
    """Three synced <video> players: reference | native | |diff| normalised to its max."""
    ref, nat = frames_of_item0(reference), frames_of_item0(native)
    fps = fps or 8
    diff, top = normalised_diff(ref, nat)
    height, width = ref.shape[1], ref.shape[2]
    shown = max(MIN_WIDTH, width)
    group = uuid.uuid4().hex[:12]
    cells = []
    for label, frames in (("reference", ref), ("native", nat), (f"|diff| / {top:.2e}", diff)):
        uri = _data_uri(encode_mp4(frames, fps), "video/mp4")
        cells.append(f"<figure style='margin:0 8px'><video data-sync='{group}' controls loop muted playsinline "
                     f"preload='auto' width='{shown}' height='{round(shown * height / width)}' "
                     f"style='image-rendering:pixelated' src='{uri}'></video>"
                     f"<figcaption>{html.escape(label)}</figcaption></figure>")
    note = (f"<p style='font-size:0.85em'>{ref.shape[0]} frames at {fps:g} fps; the first player drives the "
            "others (play, pause, seek). The diff video is |reference - native| divided by its max "
            f"({top:.3e}); black everywhere means identical.</p>")
    return (f"<div class='players' style='display:flex;flex-wrap:wrap'>{''.join(cells)}</div>{note}"
            + _SYNC_JS % {"group": group})


def audio_players_html(reference: torch.Tensor, native: torch.Tensor, sampling_rate: int | None) -> str:
    """Reference | native <audio> players (a listening preview at a browser-playable rate)."""
    from workbench.media import preview_rate

    rate = int(sampling_rate or 16000)
    cells = []
    for label, wave in (("reference", reference), ("native", native)):
        uri = _data_uri(encode_wav(waveform_of_item0(wave), rate), "audio/wav")
        cells.append(f"<figure style='margin:0 8px'><audio controls preload='auto' src='{uri}'></audio>"
                     f"<figcaption>{label}</figcaption></figure>")
    played = preview_rate(rate)
    note = "" if played == rate else (f"<p style='font-size:0.85em'>The model's rate is {rate} Hz, which browsers do "
                                      f"not play: these previews are resampled to {played} Hz.</p>")
    return f"<div class='players' style='display:flex;flex-wrap:wrap'>{''.join(cells)}</div>{note}"


def media_rates(reference, verdict=None) -> tuple[float | None, int | None]:
    """(fps, sampling rate) of a parity run: from the capture meta, else its parameters."""
    fps = rate = None
    for checkpoint in reference:
        meta = getattr(checkpoint, "meta", None) or {}
        fps = fps or meta.get("fps")
        rate = rate or meta.get("sampling_rate")
    params = getattr(verdict, "parameters", None) or {}
    fps = fps or params.get("fps") or params.get("frame_rate")
    rate = rate or params.get("sampling_rate")
    return (float(fps) if fps else None), (int(rate) if rate else None)


def parity_players_html(reference, native, verdict=None, fps: float | None = None,
                        sampling_rate: int | None = None) -> str:
    """The players a parity run's media call for ('' when it has none)."""
    found_fps, found_rate = media_rates(reference, verdict)
    fps, rate = fps or found_fps, sampling_rate or found_rate
    parts = []
    frames = next((c.name for c in reference if c.kind == "frames"), None)
    if frames is not None and frames in native and reference[frames].tensor.shape == native[frames].tensor.shape:
        parts.append(video_players_html(reference[frames].tensor, native[frames].tensor, fps))
    wave = next((c.name for c in reference if c.kind == "waveform"), None)
    if wave is not None and wave in native and reference[wave].tensor.shape == native[wave].tensor.shape:
        parts.append(audio_players_html(reference[wave].tensor, native[wave].tensor, rate))
    return "\n".join(parts)


def model_sampling_rate(model_dir: str | Path | None) -> int | None:
    """The audio rate a model directory's configs declare (Stable Audio's VAE
    `sampling_rate`, LTX-2's vocoder `output_sampling_rate`), looked up in `converted/`."""
    import json

    if model_dir is None:
        return None
    root = Path(model_dir)
    root = root / "converted" if (root / "converted").is_dir() else root
    for config in sorted(root.glob("*/config.json")):
        try:
            data = json.loads(config.read_text())
        except (OSError, ValueError):
            continue
        for key in ("output_sampling_rate", "sampling_rate"):
            if isinstance(data.get(key), (int, float)) and data[key] > 0:
                return int(data[key])
    return None
