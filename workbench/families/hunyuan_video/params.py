"""hunyuan_video request fields the shared SamplingParam does not have: declared here, typed and sourced
(from the official HunyuanVideoPipeline.__call__ signature). Values are checked from their type."""

from workbench.api.params import RequestField, declare_fields

FIELDS = declare_fields("hunyuan_video", (
    RequestField('true_cfg_scale', float, 1.0, 'diffusers 0.42.1 pipelines/hunyuan_video/pipeline_hunyuan_video.py HunyuanVideoPipeline.__call__ signature (true_cfg_scale: float = 1.0)', low=0.0),
))
