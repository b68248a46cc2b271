"""Read what OpenPCDet and SparseKD (built on it) write: their YAML configs and checkpoints, into our models.

yaml_config  OpenPCDet's YAML with ``_BASE_CONFIG_`` includes, resolved as OpenPCDet resolves them.
model_config an OpenPCDet model config -> our ModelConfig (supported modules, carried-over settings).
checkpoint   an OpenPCDet / SparseKD checkpoint file -> its model_state and what it says about itself.
spconv_layout the sparse-conv weight layouts of spconv 1.x / 2.x and how a checkpoint's layout is decided.
weights      an OpenPCDet state_dict -> ours (renames, layouts, block biases folded, input scale folded).
importer     the whole import: checkpoint + config -> one of our self-contained checkpoints.
"""
