"""3-D transformer models: the shared encoder, the JEPA predictor, the MAE decoder, sparse MoE
MLPs, and strict checkpoint loading / safetensors export."""

from neurossl.models.checkpoint_io import CheckpointError, load_encoder, save_encoder
from neurossl.models.decoder import MAEDecoder, build_decoder
from neurossl.models.layers import grid_shape, patchify, sincos_pos_embed_3d, unpatchify
from neurossl.models.moe import MoEConfig, MoEMLP
from neurossl.models.predictor import PredictorViT, build_predictor
from neurossl.models.vit import ENCODER_PRESETS, VisionTransformer3D, build_encoder

__all__ = [
    "CheckpointError", "ENCODER_PRESETS", "MAEDecoder", "MoEConfig", "MoEMLP", "PredictorViT",
    "VisionTransformer3D", "build_decoder", "build_encoder", "build_predictor", "grid_shape",
    "load_encoder", "patchify", "save_encoder", "sincos_pos_embed_3d", "unpatchify",
]
