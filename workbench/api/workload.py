"""Workload types and the media contract each one produces."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum


class WorkloadType(str, Enum):
    T2V = "t2v"   # text -> video
    I2V = "i2v"   # image (+text) -> video
    V2V = "v2v"   # video -> video
    T2I = "t2i"   # text -> image
    T2A = "t2a"   # text -> audio
    A2A = "a2a"   # audio -> audio
    T2AV = "t2av"  # text -> joint audio + video

    @property
    def has_video(self) -> bool:
        return self in (WorkloadType.T2V, WorkloadType.I2V, WorkloadType.V2V, WorkloadType.T2I, WorkloadType.T2AV)

    @property
    def takes_image(self) -> bool:
        """Whether a request may carry a conditioning image (`SamplingParam.image`, `--image`)."""
        return self is WorkloadType.I2V

    @property
    def has_audio(self) -> bool:
        return self in (WorkloadType.T2A, WorkloadType.A2A, WorkloadType.T2AV)


@dataclass(frozen=True)
class VideoMedia:
    height: int
    width: int
    num_frames: int
    fps: float  # playback rate (an int for most families; LTX-2's frame_rate is a float)


@dataclass(frozen=True)
class AudioMedia:
    audio_seconds: float
    sampling_rate: int
    channels: int


@dataclass(frozen=True)
class JointMedia:
    video: VideoMedia
    audio: AudioMedia
    muxed: bool  # one mp4 with an audio track, or paired mp4 + wav


def media_dict(media: VideoMedia | AudioMedia | JointMedia) -> dict:
    kind = {VideoMedia: "video", AudioMedia: "audio", JointMedia: "joint_av"}[type(media)]
    return {"kind": kind, **asdict(media)}
