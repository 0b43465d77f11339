"""hunyuan_video: T2V port of diffusers HunyuanVideoPipeline (scaffolded like wan_t2v)."""
