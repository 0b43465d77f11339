"""Listening previews: a wav at a rate browsers refuse gets a resampled copy to play;
the tensors (and the wav at the model's rate) stay as generated."""

from __future__ import annotations

import soundfile as sf
import torch

from workbench import notebook_helpers as nb
from workbench.media import PLAYABLE_RATES, preview_rate, write_preview_audio


def test_preview_wav_is_written_at_a_browser_playable_rate_and_keeps_the_duration(tmp_path):
    wave = torch.sin(torch.linspace(0, 6.28, 24)).repeat(2, 1)  # 1.5 s at 16 Hz, 2 channels
    info = sf.info(str(write_preview_audio(wave, tmp_path / "p.wav", 16)))
    assert PLAYABLE_RATES[0] <= info.samplerate <= PLAYABLE_RATES[1]
    assert info.channels == 2 and abs(info.duration - 1.5) < 1e-3
    assert preview_rate(16000) == 16000 and preview_rate(44100) == 44100  # playable rates are kept


def test_stable_audio_sample_keeps_its_rate_and_plays_a_preview(tmp_path):
    sample = nb.generate_sample("stable_audio", None, "cpu", {"seed": 0, "num_inference_steps": 2})
    before = sample.media["waveform"].clone()
    assert sample.sampling_rate == 16  # the tiny VAE's rate: no browser decodes it
    [wav] = nb.write_sample(sample, tmp_path, stem="sa")
    assert sf.info(str(wav)).samplerate == 16  # the data file keeps the model's rate
    preview = sample.previews[wav]
    assert sf.info(str(preview)).samplerate == preview_rate(16) >= PLAYABLE_RATES[0]
    assert torch.equal(sample.media["waveform"], before)  # compared tensors untouched
    [player] = nb.show_sample(sample)
    assert type(player).__name__ == "Audio" and player.filename == str(preview)


def test_known_library_warnings_are_filtered_and_others_are_not():
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nb.filter_known_warnings()
        warnings.warn("Should have tb<=t1 but got tb=500.00006103515625 and t1=500.0.", UserWarning)
        warnings.warn("Should have tb>=t0 but got tb=0.29999998211860657 and t0=0.3.", UserWarning)
        warnings.warn("`torch.nn.utils.weight_norm` is deprecated in favor of "
                      "`torch.nn.utils.parametrizations.weight_norm`.", FutureWarning)
        warnings.warn("something else", UserWarning)
    assert [str(w.message) for w in caught] == ["something else"]
    assert nb.figure_backend() in ("inline", "widget")
