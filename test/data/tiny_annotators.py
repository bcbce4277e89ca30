"""Tiny random-weight GroundingDINO and SAM2-video models built from transformers configs.

Only for exercising the annotation pipeline end to end (no hub weights, no network); their
detections and masks are meaningless.
"""

from pathlib import Path

import torch

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "robot", "arm", "the", "object",
         "red", "green", "blue", "yellow", "orange", "purple", "white", "pink", "cyan",
         "block", "bar", "cylinder", "disc", "triangle"]


def save_tiny_grounding_dino(folder: Path) -> Path:
    from transformers import (BertConfig, BertTokenizer, GroundingDinoConfig, GroundingDinoForObjectDetection,
                              GroundingDinoProcessor, SwinConfig)
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
        GroundingDinoImageProcessorPil,
    )

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n")
    tokenizer = BertTokenizer(str(vocab), do_lower_case=True)
    image_processor = GroundingDinoImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 96})
    backbone = SwinConfig(image_size=64, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                          window_size=2, out_features=["stage2", "stage3", "stage4"])
    text = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=16, max_position_embeddings=64)
    config = GroundingDinoConfig(
        backbone_config=backbone, text_config=text, d_model=32, encoder_layers=1, decoder_layers=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, encoder_attention_heads=2, decoder_attention_heads=2,
        num_queries=8, encoder_n_points=1, decoder_n_points=1, max_text_len=32,
        use_timm_backbone=False, use_pretrained_backbone=False,
    )
    torch.manual_seed(0)
    GroundingDinoForObjectDetection(config).save_pretrained(folder)
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def save_tiny_sam2_video(folder: Path, size: int = 32) -> Path:
    from transformers import Sam2VideoConfig, Sam2VideoModel
    from transformers.models.sam2.configuration_sam2 import (Sam2HieraDetConfig, Sam2MaskDecoderConfig,
                                                             Sam2PromptEncoderConfig, Sam2VisionConfig)

    hidden = 128  # SAM2 video hard-codes 64-channel memories; hidden must be a multiple above that
    hiera = Sam2HieraDetConfig(hidden_size=8, num_attention_heads=1, image_size=[size, size],
                               blocks_per_stage=[1, 1, 2, 1], embed_dim_per_stage=[8, 16, 32, 64],
                               num_attention_heads_per_stage=[1, 1, 1, 1], window_size_per_stage=[4, 4, 4, 2],
                               global_attention_blocks=[3], window_positional_embedding_background_size=[2, 2])
    vision = Sam2VisionConfig(backbone_config=hiera, backbone_channel_list=[64, 32, 16, 8],
                              backbone_feature_sizes=[[size // 4] * 2, [size // 8] * 2, [size // 16] * 2],
                              fpn_hidden_size=hidden)
    config = Sam2VideoConfig(
        vision_config=vision,
        prompt_encoder_config=Sam2PromptEncoderConfig(hidden_size=hidden, image_size=size, patch_size=16,
                                                      mask_input_channels=4),
        mask_decoder_config=Sam2MaskDecoderConfig(hidden_size=hidden, num_hidden_layers=1, num_attention_heads=2,
                                                  mlp_dim=32, iou_head_hidden_dim=16),
        image_size=size, memory_attention_hidden_size=hidden, memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=32, memory_attention_rope_feat_sizes=[size // 16] * 2,
        memory_encoder_hidden_size=hidden, memory_encoder_output_channels=64, mask_downsampler_embed_dim=hidden,
        memory_fuser_embed_dim=hidden, memory_fuser_intermediate_dim=32, num_maskmem=2,
    )
    torch.manual_seed(0)
    Sam2VideoModel(config).save_pretrained(folder)
    return folder
