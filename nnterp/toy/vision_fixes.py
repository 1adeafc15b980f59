"""Per-class corrections for the toy vision-language models: one row per image-text-to-text class, keyed by its
HuggingFace class name like ``TOY_FIXES`` and the registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tokenizers import AddedToken

from .fixes import ToyFix, UpstreamBug

__all__ = ["VISION_TOY_FIXES", "VisionToyFix", "UpstreamBug"]


@dataclass(frozen=True)
class VisionToyFix(ToyFix):
    """What one image-text-to-text class needs beyond the generic shrink (``ToyFix``'s config fields apply).

    ``image_processor`` and ``processor`` are keyword arguments of the image processor and of the processor
    (image sizes, patch sizes, how many tokens an image takes); ``processor_class`` and
    ``image_processor_class`` name other classes than the auto mappings' (transformers names). ``prompt``
    is the sample text, ``{image}`` standing for the processor's image token; ``image_size`` is the
    sample image's (width, height). ``special_tokens`` are added to the toy tokenizer beside those the
    processor class spells; ``tokenizer_tokens`` set attributes of the tokenizer (``image_token``) that
    some processors read. ``video_processor_class`` is built where a processor reads its video processor's
    settings (else None: the toys take no videos); ``processor_attributes`` are set on the built processor
    (settings its ``__call__`` reads from the instance but its ``__init__`` does not take).
    """

    image_processor: dict[str, Any] = field(default_factory=dict)
    processor: dict[str, Any] = field(default_factory=dict)
    processor_class: str | None = None
    image_processor_class: str | None = None
    prompt: str = "{image} What is in the picture?"
    image_size: tuple[int, int] = (32, 32)
    special_tokens: tuple[str, ...] = ()
    tokenizer_tokens: dict[str, Any] = field(default_factory=dict)
    video_processor_class: str | None = None
    processor_attributes: dict[str, Any] = field(default_factory=dict)


# A CLIP tower at 28 x 28 pixels in 14-pixel patches: four patch tokens and its class token.
_SMALL_CLIP = {"vision_config": {"image_size": 28, "patch_size": 14}}
_SMALL_CLIP_IMAGES = {"size": {"shortest_edge": 28}, "crop_size": {"height": 28, "width": 28}}

# M-RoPE splits each head's rotary frequencies into temporal, height and width sections, which must sum to
# head_dim / 2 (8 for the toys' 16); the defaults fit head_dim 128.
_SMALL_MROPE = {"rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]}}

VISION_TOY_FIXES: dict[str, VisionToyFix] = {
    # LLaVA 1.5 drops the CLIP class token ("default" strategy); the processor counts it, then removes it
    "LlavaForConditionalGeneration": VisionToyFix(sub_configs=_SMALL_CLIP, image_processor=_SMALL_CLIP_IMAGES,
                                                  processor={"num_additional_image_tokens": 1}),
    # Qwen2-VL places its M-RoPE positions from the vision-start token before each image's pad tokens; 56 x 56
    # pixels make 4 x 4 patches of 14, merged 2 x 2 into four image tokens
    "Qwen2VLForConditionalGeneration": VisionToyFix(
        prompt="<|vision_start|>{image}<|vision_end|>What is in the picture?", image_size=(56, 56),
        image_processor={"min_pixels": 56 * 56, "max_pixels": 56 * 56}, sub_configs={"text_config": _SMALL_MROPE}),
}

# -- rows from rows_2.py --
_GLM_MROPE = {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}}
_GLM_VISION = {"image_size": 56}
_GLM_IMAGES = {"size": {"shortest_edge": 2 * 56 * 56, "longest_edge": 2 * 56 * 56}}
_GLM_IMAGE = {"prompt": "<|begin_of_image|>{image}<|end_of_image|>What is in the picture?", "image_size": (56, 56),
              "special_tokens": ("<|begin_of_image|>", "<|end_of_image|>"),
              "tokenizer_tokens": {"image_token": "<|image|>", "video_token": "<|video|>"}}
# GLM-5.3's DSA (indexed) attention layers take no rotary dims (qk_rope_head_dim 0, which the shrink makes 16); a
# linear-attention (KDA) layer then an indexed one, dense then sparse MLP, hold every layer kind in two layers
_GLM5_NEXT_TEXT = {"qk_rope_head_dim": 0, "num_hidden_layers": 2,
                   "layer_types": ["linear_attention", "indexed_attention"], "mlp_layer_types": ["dense", "sparse"],
                   "indexer_types": ["full", "full"]}

VISION_TOY_FIXES.update({
    "Glm4vForConditionalGeneration": VisionToyFix(
        **_GLM_IMAGE, image_processor=_GLM_IMAGES, sub_configs={"text_config": _GLM_MROPE, "vision_config": _GLM_VISION}),
    # shared by glm46v and glmga (which transformers maps to no processor class: GLM-4.6V's, with glmga's own
    # Pillow image processor, which differs only by a patch_expand_factor of 1)
    "Glm46VForConditionalGeneration": VisionToyFix(
        **_GLM_IMAGE, processor_class="Glm46VProcessor", image_processor=_GLM_IMAGES,
        sub_configs={"text_config": _GLM_MROPE, "vision_config": _GLM_VISION}),
    # GLM-4.5V has no image processor of its own in the auto mapping: GLM-4.1V's (its checkpoints name it); its text
    # model rotates half of each head (partial_rotary_factor 0.5), so its sections sum to 4
    "Glm4vMoeForConditionalGeneration": VisionToyFix(
        **_GLM_IMAGE, image_processor_class="Glm4vImageProcessorPil", image_processor=_GLM_IMAGES,
        sub_configs={"vision_config": _GLM_VISION, "text_config": {"rope_parameters": {
            "rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5, "mrope_section": [2, 1, 1]}}}),
    # GLM-OCR maps to no processor: GLM-4.1V's processor and image processor (its checkpoints name them)
    "GlmOcrForConditionalGeneration": VisionToyFix(
        **_GLM_IMAGE, processor_class="Glm4vProcessor", image_processor_class="Glm4vImageProcessorPil",
        image_processor=_GLM_IMAGES, sub_configs={"text_config": _GLM_MROPE, "vision_config": _GLM_VISION}),
    # its image processor budgets image tokens, not pixels: four
    "Glm5NextForConditionalGeneration": VisionToyFix(
        **_GLM_IMAGE, image_processor={"min_image_tokens": 4, "max_image_tokens": 4},
        sub_configs={"text_config": _GLM5_NEXT_TEXT,
                     "vision_config": {**_GLM_VISION, "projection_intermediate_size": 128}}),
    # Granite 4 Vision feeds image features into LLM layers only (deepstack): each (vision layer, LLM layer) of
    # deepstack_layer_map and each of the 4 spatial groups of spatial_target_layers goes to its own LLM layer, so the
    # text model keeps five. Its Q-Former downsampler windows the patch grid (downsample_rate "query/window" side,
    # default None): a CLIP tower at 32 px in 8-px patches (4 x 4) in 2 x 2 windows of one query each, as the spatial
    # groups halve the side too; one 32 x 32 tile besides the base image, the CLIP class token counted then dropped
    "Granite4VisionForConditionalGeneration": VisionToyFix(
        image_processor={"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32},
                         "image_grid_pinpoints": [[32, 32]]},
        processor={"downsample_rate": "1/2", "num_additional_image_tokens": 1},
        config={"downsample_rate": "1/2", "deepstack_layer_map": [[1, 0]], "spatial_target_layers": [1, 2, 3, 4],
                "image_grid_pinpoints": [[32, 32]]},
        sub_configs={"vision_config": {"image_size": 32, "patch_size": 8}, "text_config": {"num_hidden_layers": 5}}),
    # Granite Docling shuffles each tile's patch grid by scale_factor 4: 64-pixel tiles in 8-pixel patches (8 x 8) give
    # 2 x 2 = 4 image tokens, the processor's image_seq_len; one 64 x 64 tile. Its deepstack taps vision layers 3, 7
    # and 10 by default, past the toy's two: the first
    "GraniteDoclingForConditionalGeneration": VisionToyFix(
        image_size=(64, 64), image_processor={"size": {"height": 64, "width": 64}, "max_patches": 1},
        processor={"image_seq_len": 4},
        sub_configs={"vision_config": {"image_size": 64, "patch_size": 8, "deepstack_visual_indexes": [0]}}),
    # HunYuanVL's processor wants each image wrapped in its start and end tokens (the toy tokenizer's <image_start> and
    # <image_end>, the names it reads from the tokenizer); 64 x 64 pixels in 16-pixel patches merged 2 x 2 give 2 x 2
    # tokens (and a newline token per row), its position table sized for max_image_size 64. The text model needs
    # M-RoPE sections (the checkpoints' xdrope_section: four axes of 16 for head_dim 128), which the default config
    # lacks: four of 2 for the toy's head_dim 16; the merger projects to text_hidden_size
    "HunYuanVLForConditionalGeneration": VisionToyFix(
        prompt="<image_start>{image}<image_end>What is in the picture?", image_size=(64, 64),
        image_processor={"size": {"shortest_edge": 64 * 64, "longest_edge": 64 * 64}},
        sub_configs={"vision_config": {"text_hidden_size": 64, "max_image_size": 64},
                     "text_config": {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                                                         "mrope_section": [2, 2, 2, 2]}}}),
    # HY V4's M-RoPE sections must sum to qk_rope_head_dim / 2 (8 for the toy's 16; [12, 10, 10] fit 64); 64 x 64
    # pixels in 16-pixel patches merged 2 x 2 give 2 x 2 tokens (and a newline token per row)
    "HYV4VLForConditionalGeneration": VisionToyFix(
        image_size=(64, 64), image_processor={"size": {"shortest_edge": 64 * 64, "longest_edge": 64 * 64}},
        sub_configs={"vision_config": {"max_image_size": 64},
                     "text_config": {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                                                         "mrope_section": [4, 2, 2]}}}),
    # Idefics3 shuffles each tile's patch grid by scale_factor 2, which must divide it: 32-pixel tiles in 8-pixel
    # patches (4 x 4) give 2 x 2 = 4 image tokens, the processor's image_seq_len; one 32 x 32 image is one tile
    "Idefics3ForConditionalGeneration": VisionToyFix(
        image_processor={"size": {"longest_edge": 32}, "max_image_size": {"longest_edge": 32}},
        processor={"image_seq_len": 4}, sub_configs={"vision_config": {"image_size": 32, "patch_size": 8}}),
    # InstructBLIP prepends num_query_tokens image tokens itself (the prompt is text only): four, from the config. Its
    # processor reads image_token.content, an AddedToken it makes when the tokenizer has no image_token (the toy
    # tokenizer gets one, as the processor reads tokenizer.image_token): give it the AddedToken. The Q-Former
    # cross-attends to the vision tower's width; 28 x 28 pixels in 14-pixel patches
    "InstructBlipForConditionalGeneration": VisionToyFix(
        prompt="What is in the picture?", image_size=(28, 28), image_processor={"size": {"height": 28, "width": 28}},
        tokenizer_tokens={"image_token": AddedToken("<image>", normalized=False, special=True)},
        config={"num_query_tokens": 4},
        sub_configs={"vision_config": {"image_size": 28, "patch_size": 14}, "qformer_config": {"encoder_hidden_size": 64}}),
    # InternVL shuffles the vision tower's patch grid by downsample_ratio 0.5, which must halve it: 32 x 32 pixels in
    # 8-pixel patches (4 x 4) give 2 x 2 = 4 image tokens, the processor's image_seq_length
    "InternVLForConditionalGeneration": VisionToyFix(
        image_processor={"size": {"height": 32, "width": 32}}, processor={"image_seq_length": 4},
        config={"image_seq_length": 4}, sub_configs={"vision_config": {"image_size": [32, 32], "patch_size": [8, 8]}}),
    # Janus' aligner projects the vision tower to projection_dim, which must be the text width (64); 32 x 32 pixels in
    # 16-pixel patches give four image tokens. The generation side (a VQ-VAE, built too) at toy widths: 32 pixels
    # downsample 16-fold (five levels of one block at 32 channels, the GroupNorm's 32 groups) to a 2 x 2 latent grid
    "JanusForConditionalGeneration": VisionToyFix(
        image_processor={"size": {"height": 32, "width": 32}}, processor={"num_image_tokens": 4},
        sub_configs={"vision_config": {"image_size": 32, "patch_size": 16, "projection_dim": 64, "num_image_tokens": 4},
                     "vq_config": {"num_embeddings": 64, "base_channels": 32, "latent_channels": 32, "num_patches": 2,
                                   "channel_multiplier": [1, 1, 1, 1, 1], "num_res_blocks": 1, "projection_dim": 64,
                                   "image_token_embed_dim": 64}}),
})

# Types whose only image (or video) processor is a torchvision one, with no Pillow processor producing their inputs.
_INKLING2_IMAGES = ("its only image processor, Inkling2ImageProcessor, is a TorchvisionBackend (it imports "
                    "torchvision.transforms.v2), which cannot load beside the CPU torch wheel; no Pillow image "
                    "processor produces its input: each image padded to 40-pixel tiles, cut into channels-last "
                    "(num_image_tokens, 40, 40, 3) patches, with image_grid_thw counted in merged tokens")
VISION_TOY_FIXES["Inkling2ForConditionalGeneration"] = VisionToyFix(unsupported=_INKLING2_IMAGES)
VISION_TOY_FIXES["Inkling2LoopForConditionalGeneration"] = VisionToyFix(unsupported=_INKLING2_IMAGES)
VISION_TOY_FIXES["InklingForConditionalGeneration"] = VisionToyFix(unsupported=(
    "its only image processor, InklingImageProcessor, is a TorchvisionBackend (it imports torchvision.transforms.v2), "
    "which cannot load beside the CPU torch wheel; no Pillow image processor produces its input: each image cut "
    "into 40-pixel tiles padded with -1 (a column more than the width needs), with the tile counts per image"))
VISION_TOY_FIXES["InstructBlipVideoForConditionalGeneration"] = VisionToyFix(unsupported=(
    "its processor takes a video processor only (InstructBlipVideoVideoProcessor, which needs torchvision and cannot "
    "load beside the CPU torch wheel), and the model reads pixel_values as (batch, frames, channels, height, width) "
    "clips behind num_query_tokens * 4 video tokens, which no Pillow image processor or image processor class makes"))


# -- rows from rows_3.py --
# A CLIP tower at 28 x 28 pixels in 14-pixel patches: four patch tokens and its class token.
_SMALL_CLIP_3 = {"image_size": 28, "patch_size": 14}
_SMALL_CLIP_IMAGES_3 = {"size": {"shortest_edge": 28}, "crop_size": {"height": 28, "width": 28}}
# LLaVA-NeXT's "anyres" grid at 1/12 of the real one (336 -> 28): the image is cut into 28-pixel tiles of the
# best-fitting resolution; the model config and the image processor must list the same resolutions.
_SMALL_PINPOINTS = [[28, 56], [56, 28], [56, 56]]

VISION_TOY_FIXES.update({
    # the "default" strategy drops the CLIP class token, which the processor counts and then removes
    "LlavaNextForConditionalGeneration": VisionToyFix(
        config={"image_grid_pinpoints": _SMALL_PINPOINTS}, sub_configs={"vision_config": _SMALL_CLIP_3},
        image_processor={**_SMALL_CLIP_IMAGES_3, "image_grid_pinpoints": _SMALL_PINPOINTS},
        processor={"num_additional_image_tokens": 1}),
})
VISION_TOY_FIXES["LlavaNextVideoForConditionalGeneration"] = VISION_TOY_FIXES["LlavaNextForConditionalGeneration"]
# LLaVA-OneVision's SigLIP tower at 28 x 28 pixels in 14-pixel patches (four tokens a tile, no class token) and
# its "anyres_max_9" grid at 1/13.7 of the real one (384 -> 28)
_ONEVISION_PINPOINTS = [[28, 28], [28, 56], [56, 28], [56, 56]]
# the processor counts a tile's tokens from num_image_tokens, which a checkpoint's processor config states
VISION_TOY_FIXES["LlavaOnevisionForConditionalGeneration"] = VisionToyFix(
    config={"image_grid_pinpoints": _ONEVISION_PINPOINTS}, sub_configs={"vision_config": _SMALL_CLIP_3},
    image_processor={"size": {"height": 28, "width": 28}, "image_grid_pinpoints": _ONEVISION_PINPOINTS},
    processor={"num_image_tokens": 4})

# Pixtral at 56 x 56 pixels in 14-pixel patches, merged 2 x 2 into 2 x 2 image tokens (one [IMG_BREAK] after each
# row, the last replaced by [IMG_END]); the processor and image processor cut at patch_size x spatial_merge_size,
# which the checkpoint's processor config states (its defaults, 16 and 1, fit neither model)
_SMALL_PIXTRAL = VisionToyFix(
    prompt="[INST]{image}What is in the picture?[/INST]", special_tokens=("[INST]", "[/INST]"), image_size=(56, 56),
    sub_configs={"vision_config": {"image_size": 56, "patch_size": 14}}, config={"spatial_merge_size": 2},
    image_processor={"size": {"longest_edge": 56}, "patch_size": {"height": 14, "width": 14}},
    processor={"patch_size": 14, "spatial_merge_size": 2})
VISION_TOY_FIXES["Mistral3ForConditionalGeneration"] = _SMALL_PIXTRAL
VISION_TOY_FIXES["MistralLarge4ForConditionalGeneration"] = _SMALL_PIXTRAL

# LFM3-VL cuts 16-pixel patches (the Qwen2-VL image processor it borrows defaults to 14), merged 2 x 2: 64 x 64
# pixels make 4 x 4 patches, four image tokens; the processor wraps video frames in <|vision_start|> ...
# <|vision_end|>, Qwen-style, and images likewise
VISION_TOY_FIXES["Lfm3VlForConditionalGeneration"] = VisionToyFix(
    prompt="<|vision_start|>{image}<|vision_end|>What is in the picture?", image_size=(64, 64),
    image_processor={"patch_size": 16, "merge_size": 2, "temporal_patch_size": 2,
                     "min_pixels": 64 * 64, "max_pixels": 64 * 64},
    config={"projector_hidden_size": 64})


_MINICPMV = VisionToyFix(
    image_size=(128, 128), config={"image_size": 128, "patch_size": 16, "insert_layer_id": 0},
    sub_configs={"vision_config": {"image_size": 128, "patch_size": 16, "insert_layer_id": 0}},
    image_processor={"patch_size": 16, "scale_resolution": 128}, video_processor_class="MiniCPMV4_6VideoProcessor")
VISION_TOY_FIXES["MiniCPMV4_6ForConditionalGeneration"] = _MINICPMV
VISION_TOY_FIXES["MiniCPMV4_7ForConditionalGeneration"] = _MINICPMV

# transformers' processor auto mapping has no "kosmos-2" / "kosmos-2.5" key (the dash), though the classes exist
# Kosmos-2: the processor wraps its own <image> ... </image> run of image-embedding slots (the latent queries;
# 4 here, set as the processor's num_image_tokens) at the start, so the prompt holds text alone
VISION_TOY_FIXES["Kosmos2ForConditionalGeneration"] = VisionToyFix(
    processor_class="Kosmos2Processor", prompt="<grounding>An image of", config={"latent_query_num": 4},
    processor_attributes={"num_image_tokens": 4}, sub_configs={"vision_config": _SMALL_CLIP_3},
    image_processor=_SMALL_CLIP_IMAGES_3)
# Kosmos-2.5: the processor prefixes <s><image>, num_image_tokens slots (the latent queries) and </image> to the
# text, so the prompt is the task tag alone
VISION_TOY_FIXES["Kosmos2_5ForConditionalGeneration"] = VisionToyFix(
    processor_class="Kosmos2_5Processor", prompt="<md>", special_tokens=("<md>",),
    config={"latent_query_num": 4}, processor={"num_image_tokens": 4},
    processor_attributes={"images_kwargs": {"max_patches": 16, "return_tensors": "pt"}},
    sub_configs={"vision_config": {"max_num_patches": 16}}, image_processor={"max_patches": 16})

# Kosmos-2: four latent queries (the processor's num_image_tokens) instead of 64
# Kosmos-2.5: the processor class passes max_patches=4096 to the image processor whatever its own setting; 16 here

# MiniMax-M3-VL's image processor is Qwen2-VL's with other default sizes (modular_minimax_m3_vl.py), so the
# Pillow Qwen2-VL one serves: 56 x 56 pixels make 4 x 4 patches of 14, merged 2 x 2 into four image tokens.
# The processor spells its tokens "]<]image[>[" etc. (no <...> or [...] literal) and wraps each image's run in
# its own start / end tokens; projector and merged widths default to the real model's
VISION_TOY_FIXES["MiniMaxM3SparseForConditionalGeneration"] = VisionToyFix(
    image_processor_class="Qwen2VLImageProcessorPil", image_size=(56, 56),
    image_processor={"min_pixels": 56 * 56, "max_pixels": 56 * 56},
    special_tokens=("]<]image[>[", "]<]video[>[", "]<]start of image[>[", "]<]end of image[>["),
    config={"projector_hidden_size": 64, "merged_hidden_size": 256})

# Muse Glimmer / Spark have only a torchvision image processor, a Glm4v one that differs in two ways: it lays a
# patch out (temporal, channel, ...) where Glm4v has (channel, temporal, ...), and in raster order where Glm4v
# groups merge x merge blocks (the model groups them itself). With one frame per patch (patch_temporal 1) and one
# 2 x 2 block per image (28 x 28 pixels: 2 x 2 patches of 14, one image token) the Pillow Glm4v processor's output
# is identical. out_hidden_size is the merged vision width (vision hidden x merge_size^2: 64 x 4)
_MUSE = VisionToyFix(
    image_processor_class="Glm4vImageProcessorPil", image_size=(28, 28),
    image_processor={"size": {"shortest_edge": 28 * 28, "longest_edge": 28 * 28}, "temporal_patch_size": 1,
                     "patch_size": 14, "merge_size": 2},
    sub_configs={"vision_config": {"patch_temporal": 1}},
    config={"out_hidden_size": 256, "projector_hidden_size": 64})
VISION_TOY_FIXES["MuseGlimmerForConditionalGeneration"] = _MUSE
VISION_TOY_FIXES["MuseSparkForConditionalGeneration"] = _MUSE

# MiniCPM-OCR's torchvision image processor is MiniCPM-V 4.6's with "4x" downsampling and (by default,
# small_image_upsize="always") the same resizing, so the Pillow 4.6 one serves with downsample_mode "4x": one 2 x 2
# merge, so 64 x 64 pixels in 16-pixel patches make four image tokens; its processor reads the video processor's
# settings like 4.6's
VISION_TOY_FIXES["MiniCPMOcrForConditionalGeneration"] = VisionToyFix(
    image_processor_class="MiniCPMV4_6ImageProcessorPil", image_size=(64, 64),
    config={"patch_size": 16, "insert_layer_id": 0},
    sub_configs={"vision_config": {"image_size": 64, "patch_size": 16, "insert_layer_id": 0}},
    image_processor={"patch_size": 16, "scale_resolution": 64, "downsample_mode": "4x"},
    video_processor_class="MiniCPMOcrVideoProcessor")

# Types no toy can run here (measured with the closest Pillow substitutes):
VISION_TOY_FIXES["Kimi_K25ForConditionalGeneration"] = VisionToyFix(unsupported=(
    "only a torchvision image processor (Kimi_K25ImageProcessor); its pixel_values are 4-D patches (n, 3, 14, 14) "
    "that the patch embedding's Conv2d takes, and no Pillow image processor emits that layout: Qwen2-VL's "
    "flattens each patch ('Expected 3D (unbatched) or 4D (batched) input to conv2d, but got input of size: [8, 588]')"))
VISION_TOY_FIXES["Lfm2VlForConditionalGeneration"] = VisionToyFix(unsupported=(
    "only a torchvision image processor (Lfm2VlImageProcessor); its processor reads tile_size, downsample_factor, "
    "encoder_patch_size, use_thumbnail from it and passes return_row_col_info, which the nearest Pillow one "
    "(Siglip2ImageProcessorPil, same pixel_values / pixel_attention_mask / spatial_shapes) rejects "
    "('unexpected keyword argument return_row_col_info')"))
VISION_TOY_FIXES["Molmo2ForConditionalGeneration"] = VisionToyFix(unsupported=(
    "only a torchvision image processor (Molmo2ImageProcessor), whose outputs image_token_pooling, image_grids and "
    "image_num_crops (multi-crop pooling indices) no Pillow image processor emits"))
VISION_TOY_FIXES["Mistral4ForCausalLM"] = VisionToyFix(unsupported=(
    "text-only: Mistral4ForCausalLM has no vision tower (Mistral4Config has no vision_config) and transformers "
    "maps no processor or image processor to mistral4"))

