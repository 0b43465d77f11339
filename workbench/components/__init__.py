"""Native components (library token `workbench` in a manifest).

Empty until a family needs a native module (a faster DiT, say); reused diffusers and
transformers classes load through their own library tokens.
"""
