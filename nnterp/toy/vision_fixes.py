"""Per-class corrections for the toy vision-language models: one row per image-text-to-text class, keyed by its
HuggingFace class name like ``TOY_FIXES`` and the registry."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
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
    (settings its ``__call__`` reads from the instance but its ``__init__`` does not take). ``token_fields``
    maps a config field (dotted into nested configs) to the token (or list of tokens) whose toy ids it takes,
    where the name match misses (Ovis2's <IMG_ATOM>). Rows are keyed by class name, or by model type where
    several types share a class (shieldgemma2 and gemma3). ``image_placeholder`` is the text standing for an
    image in a prompt where it is not the processor's image token (Qianfan-OCR's processor expands ``<image>``).
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
    token_fields: dict[str, Any] = field(default_factory=dict)
    image_placeholder: str | None = None


# A CLIP tower at 28 x 28 pixels in 14-pixel patches: four patch tokens and its class token.
_SMALL_CLIP_VISION = {"image_size": 28, "patch_size": 14}
_SMALL_CLIP = {"vision_config": _SMALL_CLIP_VISION}
_SMALL_CLIP_IMAGES = {"size": {"shortest_edge": 28}, "crop_size": {"height": 28, "width": 28}}

# M-RoPE splits each head's rotary frequencies into temporal, height and width sections, which must sum to
# head_dim / 2 (8 for the toys' 16); the defaults fit head_dim 128.
_MROPE_SECTIONS = {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]}
_SMALL_MROPE = {"rope_parameters": _MROPE_SECTIONS}

# Qwen-VL chat templates wrap each image's pad tokens in vision-start/end tokens, single tokens of the real
# vocabulary (the processors spell only the pad tokens; the models find images by mm_token_type_ids).
_QWEN_SPECIALS = ("<|vision_start|>", "<|vision_end|>")
_QWEN_PROMPT = "<|vision_start|>{image}<|vision_end|>What is in the picture?"
# Qwen2-VL style image processors at 56 x 56 pixels: 4 x 4 patches of 14, merged 2 x 2 into four image tokens
_QWEN_IMAGES_56 = {"min_pixels": 56 * 56, "max_pixels": 56 * 56}

VISION_TOY_FIXES: dict[str, VisionToyFix] = {
    # LLaVA 1.5 drops the CLIP class token ("default" strategy); the processor counts it, then removes it
    "LlavaForConditionalGeneration": VisionToyFix(sub_configs=_SMALL_CLIP, image_processor=_SMALL_CLIP_IMAGES,
                                                  processor={"num_additional_image_tokens": 1}),
    # Qwen2-VL places its M-RoPE positions from the vision-start token before each image's pad tokens; 56 x 56
    # pixels make 4 x 4 patches of 14, merged 2 x 2 into four image tokens
    "Qwen2VLForConditionalGeneration": VisionToyFix(
        prompt=_QWEN_PROMPT, image_size=(56, 56), image_processor=_QWEN_IMAGES_56,
        sub_configs={"text_config": _SMALL_MROPE}),
}

_GLM_MROPE = {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}}
_GLM_VISION = {"image_size": 56}
_GLM_IMAGES = {"size": {"shortest_edge": 2 * 56 * 56, "longest_edge": 2 * 56 * 56}}
_GLM_IMAGE: dict[str, Any] = {"prompt": "<|begin_of_image|>{image}<|end_of_image|>What is in the picture?",
                              "image_size": (56, 56),
              "special_tokens": ("<|begin_of_image|>", "<|end_of_image|>"),
              "tokenizer_tokens": {"image_token": "<|image|>", "video_token": "<|video|>"}}
# GLM-5.3's DSA (indexed) attention layers take no rotary dims (qk_rope_head_dim 0, which the shrink makes 16); a
# linear-attention (KDA) layer then an indexed one, dense then sparse MLP, hold every layer kind in two layers
_GLM5_NEXT_TEXT = {"qk_rope_head_dim": 0, "num_hidden_layers": 2,
                   "layer_types": ["linear_attention", "indexed_attention"], "mlp_layer_types": ["dense", "sparse"],
                   "indexer_types": ["full", "full"]}

VISION_TOY_FIXES.update({
    "Glm4vForConditionalGeneration": VisionToyFix(
        **_GLM_IMAGE, image_processor=_GLM_IMAGES,
        sub_configs={"text_config": _GLM_MROPE, "vision_config": _GLM_VISION}),
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
        sub_configs={"vision_config": {"image_size": 28, "patch_size": 14},
                     "qformer_config": {"encoder_hidden_size": 64}}),
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


# LLaVA-NeXT's "anyres" grid at 1/12 of the real one (336 -> 28): the image is cut into 28-pixel tiles of the
# best-fitting resolution; the model config and the image processor must list the same resolutions.
_SMALL_PINPOINTS = [[28, 56], [56, 28], [56, 56]]

VISION_TOY_FIXES.update({
    # the "default" strategy drops the CLIP class token, which the processor counts and then removes
    "LlavaNextForConditionalGeneration": VisionToyFix(
        config={"image_grid_pinpoints": _SMALL_PINPOINTS}, sub_configs={"vision_config": _SMALL_CLIP_VISION},
        image_processor={**_SMALL_CLIP_IMAGES, "image_grid_pinpoints": _SMALL_PINPOINTS},
        processor={"num_additional_image_tokens": 1}),
})
VISION_TOY_FIXES["LlavaNextVideoForConditionalGeneration"] = VISION_TOY_FIXES["LlavaNextForConditionalGeneration"]
# LLaVA-OneVision's SigLIP tower at 28 x 28 pixels in 14-pixel patches (four tokens a tile, no class token) and
# its "anyres_max_9" grid at 1/13.7 of the real one (384 -> 28)
_ONEVISION_PINPOINTS = [[28, 28], [28, 56], [56, 28], [56, 56]]
# the processor counts a tile's tokens from num_image_tokens, which a checkpoint's processor config states
VISION_TOY_FIXES["LlavaOnevisionForConditionalGeneration"] = VisionToyFix(
    config={"image_grid_pinpoints": _ONEVISION_PINPOINTS}, sub_configs={"vision_config": _SMALL_CLIP_VISION},
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
    processor_attributes={"num_image_tokens": 4}, sub_configs={"vision_config": _SMALL_CLIP_VISION},
    image_processor=_SMALL_CLIP_IMAGES)
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
# π0 and π0.5 (robot policies) measured on their shrunk configs, fed pixels by hand: a PaliGemma prefix fills the
# cache of a Gemma action expert, whose output the head projects to action velocities
_ACTION_POLICY = (
    "a vision-language-action model, not a language model: its forward returns flow-matching action velocities, "
    "(batch, chunk_size, max_action_dim) = (1, 16, 32) for the toy, where nnterp reads next-token logits over the "
    "vocabulary (320 tokens), and draws new noise and a new timestep on each call (two identical calls differ); its "
    "only image processor, PI0ImageProcessor, also needs torchvision (not installed)")
VISION_TOY_FIXES["PI0ForConditionalGeneration"] = VisionToyFix(unsupported=_ACTION_POLICY)
VISION_TOY_FIXES["PI05ForConditionalGeneration"] = VisionToyFix(unsupported=_ACTION_POLICY)




# the processor takes tokenizer.<name>_token_id when the tokenizer has one: naming its own spellings keeps the
# toy from adding <image>-style tokens the text never holds
_COMPASS_TOKENS = {"image_token": "<|IMAGE_PAD|>", "video_token": "<|VIDEO_PAD|>",
                   "vision_start_token": "<|VISION_START|>", "vision_end_token": "<|VISION_END|>"}

# the vision tower's depth is not shrunk (the config names it depth), its deepstack layers (8, 16, 24) must lie
# within it, its patches must be the image processor's 14 pixels, and its merger's output must be the text
# model's hidden size (the real checkpoints' 3584 is)
_COMPASS_VISION = {"depth": 2, "deepstack_visual_indexes": [1], "patch_size": 14, "out_hidden_size": 64}

# the processors of the Qwen2-VL family take tokenizer.image_token (and the like) when the tokenizer has one, else
# their own spellings; naming those keeps the toy from inventing an <image> token the chat template never writes
_QWEN_TOKENS = {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                "vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>"}

# DeepSeek-VL: SigLIP at 32 x 32 pixels in 16-pixel patches gives four image tokens, the count the processor
# writes (num_image_tokens, 576 for the real 384-pixel tower); its tokenizer spells the image <image_placeholder>
_DEEPSEEK_VL: dict[str, Any] = dict(tokenizer_tokens={"image_token": "<image_placeholder>"},
                                    special_tokens=("<image_placeholder>",),
                    processor={"num_image_tokens": 4})
_DEEPSEEK_VL_VISION = {"image_size": 32, "patch_size": 16}

# a SAM tower at toy size, for nested configs the row replaces whole (the shrink does not reach them then)
_SMALL_SAM = {"hidden_size": 64, "output_channels": 16, "num_hidden_layers": 2, "num_attention_heads": 4,
              "mlp_dim": 128}

# Chameleon turns an image into VQ-VAE codes and the codes into text tokens through config.vocabulary_map, whose
# "IMGIMG<code>Z" names spell each code in letters (A = 0 ... J = 9) and whose "<image>" entry is the placeholder's
# id. A 16-code book mapped onto the toy vocabulary's spare <extra_300> ... <extra_315> ids; "<image>" is the first
# token the toy tokenizer adds (id 320: the processor's first spelled special token)
_CHAMELEON_CODES = {"IMGIMG" + "".join("ABCDEFGHIJ"[int(d)] for d in str(code)) + "Z": 300 + code for code in range(16)}
_CHAMELEON_VOCABULARY = {"<image>": 320, **_CHAMELEON_CODES}

VISION_TOY_FIXES.update({
    "CohereCompassForConditionalGeneration": VisionToyFix(
        prompt="<|VISION_START|>{image}<|VISION_END|>What is in the picture?", image_size=(56, 56),
        image_processor=_QWEN_IMAGES_56, tokenizer_tokens=_COMPASS_TOKENS,
        # the rotary embedding reads rope_parameters per layer type
        sub_configs={"text_config": {"rope_parameters": {"full_attention": _MROPE_SECTIONS}},
                     "vision_config": _COMPASS_VISION}),
    # interleaved M-RoPE (T, H, W every third frequency): the defaults [24, 20, 20] fit head_dim 128, these keep
    # their proportions at the toy's 16; 64 x 64 pixels make 4 x 4 patches of 16, merged 2 x 2 into four tokens.
    # The model needs mm_token_type_ids for M-RoPE, which Cosmos3EdgeProcessor only returns when the call asks
    # (unlike Qwen2-VL's, it does not default return_mm_token_type_ids to True); Qwen2VLProcessor expands the
    # image token the same way (grid t*h*w / merge_size**2) and returns them
    "Cosmos3EdgeForConditionalGeneration": VisionToyFix(
        prompt=_QWEN_PROMPT, image_size=(64, 64), tokenizer_tokens=_QWEN_TOKENS, special_tokens=_QWEN_SPECIALS,
        processor_class="Qwen2VLProcessor", config={"projector_hidden_size": 128},
        image_processor={"size": {"shortest_edge": 64 * 64, "longest_edge": 64 * 64}},
        sub_configs={"text_config": {"rope_parameters": {**_MROPE_SECTIONS, "mrope_section": [4, 2, 2]}},
                     "vision_config": {"num_patches": 16}}),
    # a Qwen2.5-VL vision tower: its depth is not shrunk (the config names it depth), its full-attention blocks
    # (7, 15, 23, 31) must lie within it, and its merger's output must be the text model's hidden size
    "Exaone4_5_ForConditionalGeneration": VisionToyFix(
        prompt=_QWEN_PROMPT, image_size=(56, 56), image_processor=_QWEN_IMAGES_56, tokenizer_tokens=_QWEN_TOKENS,
        special_tokens=_QWEN_SPECIALS,
        sub_configs={"vision_config": {"depth": 2, "fullatt_block_indexes": [1], "out_hidden_size": 64}}),
    # LLaVA-OneVision-1.5 takes EXAONE 4.5's processor and Qwen2-VL's image processor, whose default
    # temporal_patch_size 2 stacks two frames per patch; its tower's patch embedding is a Conv2d over one frame
    # (rows of in_channels * 14 * 14), so one frame a patch. 56 x 56 pixels make 4 x 4 patches, merged 2 x 2 into four
    # image tokens
    "LlavaOnevision15ForConditionalGeneration": VisionToyFix(
        prompt=_QWEN_PROMPT, image_size=(56, 56), image_processor={**_QWEN_IMAGES_56, "temporal_patch_size": 1},
        tokenizer_tokens=_QWEN_TOKENS, special_tokens=_QWEN_SPECIALS),
    # the processor resizes every image to 980 pixels (its images_kwargs fix max_image_size, the image processor takes
    # only 490 or 980), and the projector maps each count of vision patches to a count of queries: 70-pixel patches
    # make 14 x 14 of them, mapped to four image tokens. The chat template wraps the image in FIM tokens
    "AriaForConditionalGeneration": VisionToyFix(
        prompt="<fim_prefix>{image}<fim_suffix>What is in the picture?",
        special_tokens=("<fim_prefix>", "<fim_suffix>"),
        processor={"size_conversion": {490: 1, 980: 4}},
        config={"projector_patch_to_query_dict": {49: 1, 196: 4}},
        sub_configs={"vision_config": {"image_size": 980, "patch_size": 70}}),
    # SigLIP at 56 x 56 pixels in 14-pixel patches: 4 x 4 patches, pixel-shuffled 2 x 2 into four image tokens per
    # tile; the processor counts (img_size / patch_size)**2 tokens a tile, patch_size being 14 x downsample 2
    "AyaVisionForConditionalGeneration": VisionToyFix(
        image_size=(56, 56), image_processor={"size": {"height": 56, "width": 56}},
        processor={"img_size": 56, "patch_size": 14, "downsample_factor": 2},
        sub_configs={"vision_config": {"image_size": 56, "patch_size": 14}}),
    # the processor prepends num_query_tokens image tokens to the text itself, and reads tokenizer.image_token as an
    # AddedToken (its .content): a plain string there fails. A ViT at 28 x 28 pixels in 14-pixel patches, four queries
    "Blip2ForConditionalGeneration": VisionToyFix(
        prompt="Question: What is in the picture? Answer:", image_size=(28, 28),
        tokenizer_tokens={"image_token": AddedToken("<image>", normalized=False, special=True)},
        image_processor={"size": {"height": 28, "width": 28}}, config={"num_query_tokens": 4},
        sub_configs={"vision_config": {"image_size": 28, "patch_size": 14}}),
    "DeepseekVLForConditionalGeneration": VisionToyFix(
        **_DEEPSEEK_VL, image_processor={"size": {"height": 32, "width": 32}},
        sub_configs={"vision_config": _DEEPSEEK_VL_VISION}),
    # and a SAM tower at 64 x 64 pixels beside it, whose features are resized to the SigLIP grid; its global-attention
    # layer (2, 5, 8, 11 by default) must lie within the toy's two layers
    "DeepseekVLHybridForConditionalGeneration": VisionToyFix(
        **_DEEPSEEK_VL,
        image_processor={"size": {"height": 32, "width": 32}, "high_res_size": {"height": 64, "width": 64}},
        sub_configs={"vision_config": _DEEPSEEK_VL_VISION,
                     "high_res_vision_config": {"image_size": 64, "global_attn_indexes": [1], "window_size": 2}}),
    # M-RoPE sections (height, width, time) must sum to head_dim / 2, the defaults [22, 22, 20] fit head_dim 128; the
    # vision tower's depth is not shrunk (the config names it depth). 56 x 56 pixels make four image tokens
    "Ernie4_5_VLMoeForConditionalGeneration": VisionToyFix(
        prompt="<image_start>{image}<image_end>What is in the picture?", image_size=(56, 56),
        image_processor={"size": {"shortest_edge": 56 * 56, "longest_edge": 56 * 56}},
        sub_configs={"text_config": {"rope_parameters": {"rope_type": "default", "rope_theta": 500000.0,
                                                         "mrope_section": [3, 3, 2]}},
                     "vision_config": {"depth": 2}}),
    # the DaViT tower's per-stage lists cannot take the generic shrink's single sizes: four stages of one block,
    # striding 4 x 2 x 2 x 2 pixels, so 64 x 64 pixels end as 2 x 2 features plus the pooled temporal token: five image
    # tokens, which the processor takes from image_seq_length. It prepends the image tokens itself; the prompt is
    # the text the <CAPTION> task token stands for
    "Florence2ForConditionalGeneration": VisionToyFix(
        prompt="What does the image describe?", image_size=(64, 64),
        image_processor={"size": {"height": 64, "width": 64}, "crop_size": {"height": 64, "width": 64},
                         "image_seq_length": 5},
        sub_configs={"vision_config": {"depths": [1, 1, 1, 1], "embed_dim": [16, 32, 48, 64], "num_heads": [1, 2, 3, 4],
                                       "num_groups": [1, 2, 3, 4], "window_size": 4, "projection_dim": 64}}),
    # the vision model's learned queries are fixed at 144 per view (nn.Embedding(144), for 768-pixel views): every view
    # gives 144 image tokens whatever its size, and the processor counts (size / 16 / 4)**2 per view, so views stay
    # 768 pixels (an image under the tile size gets no local tiles, only the global view). 64-pixel SAM
    # patches keep the tower cheap (12 x 12, downsampled to 3 x 3); the SAM output feeds the encoder, whose hidden
    # size is the last downsample channel count; its global-attention layer must lie within the toy's two layers
    "DeepseekOcr2ForConditionalGeneration": VisionToyFix(
        prompt="{image}\nFree OCR.", image_size=(64, 64),
        image_processor={"size": {"height": 768, "width": 768}, "tile_size": 768},
        sub_configs={"text_config": {"mlp_layer_types": ["dense", "sparse"]},
                     "vision_config": {"sam_config": {**_SMALL_SAM, "image_size": 768, "patch_size": 64,
                                                      "window_size": 4,
                                                      "global_attn_indexes": [1], "downsample_channels": [32, 64]}}}),
    # a 16 x 16 image through two 2x downsampling levels gives 4 x 4 = 16 codes, the image_seq_length the processor
    # writes (the VQ-VAE's GroupNorm takes 32 groups, so 32 base channels); the tokenizer's boi/eoi tokens are the
    # processor's own defaults
    "ChameleonForConditionalGeneration": VisionToyFix(
        image_size=(16, 16), image_processor={"size": {"shortest_edge": 16}, "crop_size": {"height": 16, "width": 16}},
        processor={"image_seq_length": 16},
        tokenizer_tokens={"boi_token": "<racm3:break>", "eoi_token": "<eoss>"},
        config={"vocabulary_map": _CHAMELEON_VOCABULARY},
        sub_configs={"vq_config": {"resolution": 16, "channel_multiplier": [1, 1, 2], "base_channels": 32,
                                   "num_embeddings": 16, "embed_dim": 16, "latent_channels": 16, "num_res_blocks": 1}}),
    # transformers has only a torchvision image processor for it; GOT-OCR2's Pillow one tiles images the same way and
    # returns the same pixel_values and num_patches. The processor writes patch_size**2 image tokens a tile (patch_size
    # counts tokens a side here): SigLIP at 56 x 56 pixels in 14-pixel patches, pixel-shuffled 2 x 2, gives 2 x 2
    "Cohere2VisionForConditionalGeneration": VisionToyFix(
        image_size=(56, 56), image_processor_class="GotOcr2ImageProcessorPil",
        image_processor={"size": {"height": 56, "width": 56}, "crop_to_patches": True, "patch_size": 2},
        config={"alignment_intermediate_size": 128},
        sub_configs={"vision_config": {"image_size": 56, "patch_size": 14}}),
    # transformers has only a torchvision image processor for it; Pixtral's Pillow one does the same job: resizes to
    # multiples of 16 pixels (the vision tokenizer's downsampling) and returns pixel_values with image_sizes, normalised
    # to [-1, 1]; spatial_factor is the attribute the processor reads. The VQ vision tokenizer's and the WavTokenizer's
    # codes become text tokens at image_token_offset / audio_token_offset: small codebooks (16 and 4) on the toy
    # vocabulary's spare ids 300... and 316...; 32 x 32 pixels give 2 x 2 codes. WavTokenizer's codebook_dim must equal
    # its hidden size (64), which its filters reach after four doublings (4 * 16); the VQ-VAE's GroupNorm takes 32
    # groups, so 32 base channels
    "Apertus1p5ForConditionalGeneration": VisionToyFix(
        image_processor_class="PixtralImageProcessorPil",
        image_processor={"size": {"longest_edge": 32}, "patch_size": 16, "spatial_factor": 16,
                         "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]},
        config={"image_token_offset": 300, "audio_token_offset": 316},
        sub_configs={"vision_config": {"codebook_size": 16, "base_channels": 32, "num_res_blocks": 1,
                                       "attn_resolutions": [],
                                       "embed_dim": 16, "latent_channels": 16, "resolution": 32},
                     "audio_config": {"codebook_size": 4, "codebook_dim": 64, "num_filters": 4}}),
    # transformers maps no processor to it; its towers are Qwen3-VL's, so Qwen3VLProcessor with the mapped Qwen2-VL
    # image processor: 64 x 64 pixels in 16-pixel patches (the tower's), merged 2 x 2 into four tokens. Interleaved
    # M-RoPE sections at the toy's head_dim as for Cosmos3 Edge; the tower's depth is not shrunk (the config names it
    # depth), its deepstack layers (8, 16, 24) must lie within it, its merger must output the text hidden size
    "Cosmos3OmniForConditionalGeneration": VisionToyFix(
        prompt=_QWEN_PROMPT, image_size=(64, 64), processor_class="Qwen3VLProcessor", tokenizer_tokens=_QWEN_TOKENS,
        special_tokens=_QWEN_SPECIALS, image_processor={"min_pixels": 64 * 64, "max_pixels": 64 * 64, "patch_size": 16},
        sub_configs={"text_config": {"rope_parameters": {**_MROPE_SECTIONS, "rope_theta": 500000.0,
                                                         "mrope_section": [4, 2, 2]}},
                     "vision_config": {"depth": 2, "deepstack_visual_indexes": [1], "out_hidden_size": 64}}),
    # no image processor is mapped to it; its vision tower is Gemma 4's, so Gemma 4's Pillow one, at its smallest
    # budget (max_soft_tokens must be 70, 140, 280, 560 or 1120). Gemma4Processor raises unless the tokenizer names
    # boa/eoa tokens even without audio (`audio is not None and ... or boa is None or eoa is None`); the MoE text
    # model needs top_k_experts (None by default); the 10240-row patch position table shrinks to 64
    "DiffusionGemmaForBlockDiffusion": VisionToyFix(
        image_processor_class="Gemma4ImageProcessorPil", image_processor={"max_soft_tokens": 70},
        processor={"image_seq_length": 70},
        tokenizer_tokens={"audio_token": "<|audio|>", "boa_token": "<|audio>", "eoa_token": "<audio|>"},
        sub_configs={"text_config": {"top_k_experts": 2}, "vision_config": {"position_embedding_size": 64}}),
    "EvollaForProteinText2Text": VisionToyFix(
        unsupported="a protein-sequence-to-text model in the image-text-to-text mapping: EvollaProcessor takes "
                    "protein sequences and structures (SaProt tokens), not images, and transformers maps no image "
                    "processor to it"),
    "FastVlmForConditionalGeneration": VisionToyFix(
        unsupported="its vision tower is a TimmWrapperModel (FastViTHD), which needs the timm package (not installable "
                    "beside the CPU torch wheel); transformers also maps no processor class to it"),
})



# Qwen3-VL's tower takes 16-pixel patches (64 x 64 pixels: 4 x 4, merged 2 x 2 into four tokens), adds its
# deepstack layers' features (8, 16, 24, past the toy's two) to the LM's first layers, and has a 48 x 48
# grid of position embeddings (8 x 8 here, interpolated); its
# processor reads the vision-start/end tokens from the tokenizer. Its text M-RoPE interleaves the sections.
_QWEN3_VL = VisionToyFix(
    prompt=_QWEN_PROMPT, image_size=(64, 64), special_tokens=_QWEN_SPECIALS,
    tokenizer_tokens={"vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>"},
    image_processor={"patch_size": 16, "min_pixels": 64 * 64, "max_pixels": 64 * 64},
    sub_configs={"text_config": {"rope_parameters": {**_MROPE_SECTIONS, "mrope_interleaved": True}},
                 "vision_config": {"deepstack_visual_indexes": [0], "num_position_embeddings": 64}})

# Gemma 3's processors take tokenizer.boi_token / image_token / eoi_token (<start_of_image>, <image_soft_token>,
# <end_of_image> in the checkpoints; the toy spells them <boi>, <image>, <eoi>) and wrap turns in these
_GEMMA3_TURNS = ("<start_of_turn>", "<end_of_turn>")
_GEMMA3_PROMPT = "<start_of_turn>user\n{image}What is in the picture?<end_of_turn>\n<start_of_turn>model\n"
_GEMMA3_IMAGES = {"size": {"height": 32, "width": 32}}
# the shrunk SigLIP tower (a nested config is replaced whole) at 32 pixels in 8-pixel patches
_GEMMA3_SIGLIP = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                  "image_size": 32, "patch_size": 8, "model_type": "siglip_vision_model"}

# (the auto mapping's; no other Pillow image processor was tried for these)

VISION_TOY_FIXES.update({
    # VipLlava concatenates the CLIP hidden states (class token dropped) of layers -2, -5, -8, -11 and 6,
    # past the toy tower's two layers (three hidden states): the last-but-one and the embeddings here
    "VipLlavaForConditionalGeneration": VisionToyFix(
        config={"vision_feature_layer": [-2, 0]}, sub_configs={"vision_config": _SMALL_CLIP_VISION},
        image_processor=_SMALL_CLIP_IMAGES, prompt="###Human: {image}\nWhat is in the picture?###Assistant:"),
    # Qwen2.5-VL's vision tower lists its full-attention blocks (7, 15, 23, 31) past the toy's two
    "Qwen2_5_VLForConditionalGeneration": VisionToyFix(
        prompt=_QWEN_PROMPT, image_size=(56, 56), image_processor=_QWEN_IMAGES_56, special_tokens=_QWEN_SPECIALS,
        sub_configs={"text_config": _SMALL_MROPE,
                     "vision_config": {"fullatt_block_indexes": [1]}}),
    "Qwen3VLForConditionalGeneration": _QWEN3_VL,
    # the auto mapping names no image processor for Qwen3-VL-MoE; its checkpoints ship Qwen3-VL's
    # (Qwen2VLImageProcessor) and share its tower
    "Qwen3VLMoeForConditionalGeneration": replace(_QWEN3_VL, image_processor_class="Qwen2VLImageProcessorPil"),
    # PaddleOCR-VL: the 384-pixel SigLIP tower's position grid shrunk to 56 pixels (4 x 4 patches of 14, merged
    # 2 x 2 into four image tokens); its M-RoPE sections default to [16, 24, 24] (head_dim 128)
    "PaddleOCRVLForConditionalGeneration": VisionToyFix(
        prompt="User: <|IMAGE_START|>{image}<|IMAGE_END|>What is in the picture?\nAssistant: ", image_size=(56, 56),
        special_tokens=("<|IMAGE_START|>", "<|IMAGE_END|>"), image_processor=_QWEN_IMAGES_56,
        sub_configs={"text_config": _SMALL_MROPE, "vision_config": {"image_size": 56}}),
    # VideoLLaMA 3's config defaults to 16-pixel patches, its image processor (as the checkpoints) to 14; images
    # are not merged (merge size 1), so 28 x 28 pixels make four image tokens
    "VideoLlama3ForConditionalGeneration": VisionToyFix(
        prompt="{image}\nWhat is in the picture?", image_size=(28, 28),
        image_processor={"min_pixels": 28 * 28, "max_pixels": 28 * 28},
        sub_configs={"vision_config": {"patch_size": 14}}),
    # PaliGemma's processor takes the image-token count from the image processor (image_seq_length, which a
    # checkpoint's preprocessor config states); a 28-pixel SigLIP tower in 14-pixel patches gives four. The
    # projector's width (projection_dim, 2048) is the LM's hidden size
    "PaliGemmaForConditionalGeneration": VisionToyFix(
        prompt="{image}answer en What is in the picture?", image_size=(28, 28),
        image_processor={"size": {"height": 28, "width": 28}, "image_seq_length": 4},
        config={"projection_dim": 64}, sub_configs={"vision_config": {"image_size": 28, "patch_size": 14}}),
    # SmolVLM: a 32-pixel SigLIP tower in 8-pixel patches (4 x 4), pixel-shuffled 2 x 2 into four image tokens,
    # the count the processor is told (image_seq_len, 169 by default); a 32-pixel image is one tile
    "SmolVLMForConditionalGeneration": VisionToyFix(
        video_processor_class="SmolVLMVideoProcessor",  # its apply_chat_template reads video_processor.num_frames
        prompt="<|im_start|>User:{image}What is in the picture?<end_of_utterance>\nAssistant:", image_size=(32, 32),
        image_processor={"size": {"longest_edge": 32}, "max_image_size": {"longest_edge": 32}},
        processor={"image_seq_len": 4}, special_tokens=("<|im_start|>",),
        sub_configs={"vision_config": {"image_size": 32, "patch_size": 8}}),
    # Pix2Struct (T5-style) sizes heads by d_kv (64), which the shrink leaves: 64 / 64 is one head where the mask
    # has four. The text is the decoder's; the image is the encoder's (no image token). MONKEYPATCH below
    # cuts the processor's max_patches (a class attribute, 2048) to 16 (a 64 x 64 image in 16-pixel patches),
    # whose row/column ids (from 1) need seq_len 17
    "Pix2StructForConditionalGeneration": VisionToyFix(
        prompt="What is in the picture?", image_size=(64, 64),
        sub_configs={"text_config": {"d_kv": 16}, "vision_config": {"d_kv": 16, "seq_len": 17}}),
    # T5Gemma 2 (Gemma 3's processor): a 32-pixel SigLIP tower in 8-pixel patches (4 x 4), average-pooled to
    # mm_tokens_per_image 4 (2 x 2), the processor told the same (image_seq_length, 256 by default). Gemma 3's
    # processor gives its begin-of-image id as image_token_id (the text's placeholder), so the name match
    # points image_token_index at <boi>; the model looks for the soft image tokens (tokenizer.image_token)
    "T5Gemma2ForConditionalGeneration": VisionToyFix(
        prompt=_GEMMA3_PROMPT, image_size=(32, 32), image_processor=_GEMMA3_IMAGES, processor={"image_seq_length": 4},
        special_tokens=_GEMMA3_TURNS,
        sub_configs={"encoder": {"mm_tokens_per_image": 4, "vision_config": _GEMMA3_SIGLIP}},
        token_fields={"image_token_index": "<image>", "eoi_token_index": "<eoi>",
                      "encoder.image_token_index": "<image>", "encoder.boi_token_index": "<boi>",
                      "encoder.eoi_token_index": "<eoi>"}),
    # ShieldGemma 2 ignores the text: it builds one prompt per image and policy (three by default) through its
    # chat template (the toy's: the image, then the policy); one short policy makes one prompt per image.
    # Gemma 3's image-token quirk and sizes as T5Gemma 2 above
    # keyed by model type: the class is Gemma 3's too (rows by model type come before rows by class)
    "shieldgemma2": VisionToyFix(
        prompt="{image}", image_size=(32, 32), image_processor=_GEMMA3_IMAGES, special_tokens=_GEMMA3_TURNS,
        processor={"image_seq_length": 4,
                   "policy_definitions": {"dangerous": "No Dangerous Content: no content that facilitates harm."}},
        config={"mm_tokens_per_image": 4}, sub_configs={"vision_config": {"image_size": 32, "patch_size": 8}},
        token_fields={"image_token_index": "<image>"}),
    # Gemma 3 (its 4B+ checkpoints): a SigLIP tower at 32 x 32 pixels in 8-pixel patches pooled into four image
    # tokens (mm_tokens_per_image, 256 in the checkpoints); the processor writes <start_of_image>, the image tokens
    # and <end_of_image> in place of the boi token, inside the chat turn the checkpoints' template writes
    "gemma3": VisionToyFix(
        prompt="<start_of_turn>user\n{image}What is in the picture?<end_of_turn>\n<start_of_turn>model\n",
        image_size=(32, 32), image_processor=_GEMMA3_IMAGES, special_tokens=_GEMMA3_TURNS,
        processor={"image_seq_length": 4}, config={"mm_tokens_per_image": 4},
        sub_configs={"vision_config": {"image_size": 32, "patch_size": 8}},
        token_fields={"image_token_index": "<image>"}),
    # Ovis 2: a 28-pixel tower in 14-pixel patches, four image tokens (image_seq_length, 256 by default), a small
    # visual vocabulary (16384). Its processor names <image> as image token but writes each image as
    # <IMG_START>, <IMG_ATOM> x image_seq_length, <IMG_GRID>, ..., <IMG_END>: the model looks for the atoms, and
    # embeds the five indicator tokens from its visual vocabulary (their ids in the checkpoint's order)
    "Ovis2ForConditionalGeneration": VisionToyFix(
        prompt="{image}\nWhat is in the picture?", image_size=(28, 28),
        image_processor={"size": {"height": 28, "width": 28}},
        processor={"image_seq_length": 4}, sub_configs={"vision_config": {"image_size": 28, "vocab_size": 64}},
        token_fields={"image_token_id": "<IMG_ATOM>", "visual_indicator_token_ids": [
            "<IMG_START>", "<IMG_GRID>", "<IMG_COL>", "<IMG_ROW>", "<IMG_END>"]}),
    # Qianfan-OCR (InternVL-like): a 56-pixel tower in 14-pixel patches (4 x 4), pixel-shuffled by 0.5 into four
    # image tokens, the count processor and config are told (image_seq_length, 256). The text marks images with
    # <image> (image_placeholder_token), which the processor expands; its image_token is the context token.
    "QianfanOCRForConditionalGeneration": VisionToyFix(
        prompt="{image}\nWhat is in the picture?", image_placeholder="<image>", image_size=(56, 56),
        image_processor={"size": {"height": 56, "width": 56}}, processor={"image_seq_length": 4},
        config={"image_seq_length": 4}, sub_configs={"vision_config": {"image_size": [56, 56]}}),
    # PP-Chart2Table (keyed by type: GOT-OCR 2's class): its processor expands nothing, the checkpoint's chat
    # template writes <img>, image_seq_length <imgpad> and </img>, whose id the name match misses. A 128-pixel
    # SAM tower in 16-pixel patches (8 x 8, windows of 14 pad it) is downsampled 4 x 4 into four tokens;
    # smaller neck channels (256) and MLP (3072)
    "pp_chart2table": VisionToyFix(
        prompt="{image}\nChart to table", image_placeholder="<img>" + "<imgpad>" * 4 + "</img>", image_size=(128, 128),
        image_processor={"size": {"height": 128, "width": 128}}, special_tokens=("<img>", "<imgpad>", "</img>"),
        config={"image_seq_length": 4}, token_fields={"image_token_index": "<imgpad>"},
        sub_configs={"vision_config": {"image_size": 128, "global_attn_indexes": [1], "output_channels": 32,
                                       "mlp_dim": 128}}),
    # measured: with apply_ocr=False (OCR needs the tesseract binary) the forward raises TypeError at bbox[:, :, 0]
    "UdopForConditionalGeneration": VisionToyFix(
        unsupported="its forward needs a bounding box per token (bbox), which only UdopTokenizer builds from "
                    "word boxes; the toy byte-level tokenizer gives none, and the image processor's own OCR "
                    "needs the tesseract binary"),
    # Qwen2.5-Omni's thinker: the auto mappings name no processor for the thinker type; the Omni checkpoints ship
    # Qwen2_5OmniProcessor with Qwen2-VL's image processor. get_rope_index reads config.vision_start_token_id,
    # which the thinker config does not declare (the checkpoints' config.json states it): <|vision_bos|>
    "Qwen2_5OmniThinkerForConditionalGeneration": VisionToyFix(
        processor_class="Qwen2_5OmniProcessor", image_processor_class="Qwen2VLImageProcessorPil",
        special_tokens=("<|vision_bos|>", "<|vision_eos|>"),
        tokenizer_tokens={"vision_bos_token": "<|vision_bos|>", "vision_eos_token": "<|vision_eos|>"},
        token_fields={"vision_start_token_id": "<|vision_bos|>"},
        prompt="<|vision_bos|>{image}<|vision_eos|>What is in the picture?", image_size=(56, 56),
        image_processor=_QWEN_IMAGES_56, sub_configs={"text_config": _SMALL_MROPE}),
    # Qwen3-Omni-MoE's thinker: as Qwen2.5-Omni's, with Qwen3-VL's 16-pixel patches and deepstack layers; its audio
    # tower's convolutions (480 channels) and output width (3584) left 5M parameters
    "Qwen3OmniMoeThinkerForConditionalGeneration": VisionToyFix(
        processor_class="Qwen3OmniMoeProcessor", image_processor_class="Qwen2VLImageProcessorPil",
        special_tokens=("<|vision_bos|>", "<|vision_eos|>"),
        tokenizer_tokens={"vision_bos_token": "<|vision_bos|>", "vision_eos_token": "<|vision_eos|>"},
        token_fields={"vision_start_token_id": "<|vision_bos|>"},
        prompt="<|vision_bos|>{image}<|vision_eos|>What is in the picture?", image_size=(64, 64),
        image_processor={"patch_size": 16, "min_pixels": 64 * 64, "max_pixels": 64 * 64},
        sub_configs={"text_config": {"rope_parameters": {**_MROPE_SECTIONS,
                                                         "mrope_interleaved": True}},
                     "vision_config": {"deepstack_visual_indexes": [0], "num_position_embeddings": 64},
                     "audio_config": {"downsample_hidden_size": 16, "output_dim": 64}}),
    "VisionEncoderDecoderModel": VisionToyFix(
        unsupported="a composite of any vision encoder and text decoder (ViT + BERT by default): transformers maps "
                    "no processor to it, the processor depends on the checkpoint's pair (not tried further)"),
})


# Qwen3.5 / Qwen4-Exp (Qwen3-VL's processor and tower): 64 x 64 pixels in 16-pixel patches (4 x 4), merged 2 x 2
# into four image tokens; the tower's 48 x 48 position grid shrinks to 8 x 8 and its merger outputs the text width.
# The text model rotates a quarter of each head (partial_rotary_factor 0.25: 64 of 256 dims, sections [11, 11, 10]);
# at the toy's head_dim 16, half of it (8 dims), interleaved sections summing to 4
_QWEN3_5_ROPE = {"rope_parameters": {"rope_type": "default", "rope_theta": 10000000.0, "partial_rotary_factor": 0.5,
                                     "mrope_section": [2, 1, 1], "mrope_interleaved": True}}
_QWEN3_5: dict = dict(
    prompt="<|vision_start|>{image}<|vision_end|>What is in the picture?", image_size=(64, 64),
    special_tokens=("<|vision_start|>", "<|vision_end|>"),
    tokenizer_tokens={"vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>"},
    image_processor={"patch_size": 16, "min_pixels": 64 * 64, "max_pixels": 64 * 64})
_QWEN3_5_VISION = {"num_position_embeddings": 64, "out_hidden_size": 64}

VISION_TOY_FIXES.update({
    "qwen3_5": VisionToyFix(**_QWEN3_5, sub_configs={"text_config": _QWEN3_5_ROPE, "vision_config": _QWEN3_5_VISION}),
    "qwen3_5_moe": VisionToyFix(**_QWEN3_5, sub_configs={"text_config": _QWEN3_5_ROPE,
                                                         "vision_config": _QWEN3_5_VISION}),
    "qwen4_exp": VisionToyFix(**_QWEN3_5, sub_configs={
        "text_config": {**_QWEN3_5_ROPE, "indexer_n_heads": 4, "indexer_kv_heads": 1, "indexer_head_dim": 16,
                        "indexer_budget": 8, "indexer_compress_ratio": 4},
        "vision_config": _QWEN3_5_VISION}),
})

# Gemma 4: its image processor resizes each image to fill max_soft_tokens (70 at least) pooled tokens; without the
# resize (do_resize False) a 32 x 32 image in 8-pixel patches (4 x 4) pooled 2 x 2 gives four soft tokens (the patch
# list padded to max_soft_tokens x pooling_kernel_size**2). The processor raises unless the tokenizer names audio
# tokens (boa, eoa) even without audio; the 10240-row patch position table shrinks to 64
_GEMMA4_TURNS = ("<|turn>", "<turn|>")
_GEMMA4: dict = dict(
    prompt="<|turn>user\n{image}What is in the picture?<turn|>\n<|turn>model\n", special_tokens=_GEMMA4_TURNS,
    image_size=(32, 32),
    image_processor={"max_soft_tokens": 70, "patch_size": 8, "pooling_kernel_size": 2, "do_resize": False},
    tokenizer_tokens={"audio_token": "<|audio|>", "boa_token": "<|audio>", "eoa_token": "<audio|>"})
# Gemma4Config leaves vision_config None (built from the row's values alone, the shrink does not reach it): toy sizes
_GEMMA4_VISION = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                  "num_key_value_heads": 4, "head_dim": 16, "position_embedding_size": 64, "patch_size": 8,
                  "pooling_kernel_size": 2}
VISION_TOY_FIXES["gemma4"] = VisionToyFix(**_GEMMA4, sub_configs={"vision_config": _GEMMA4_VISION})

# Gemma 4 unified: only a torchvision image processor (Gemma4UnifiedImageProcessor), which cuts patch_size patches and
# merges each pooling_kernel_size x pooling_kernel_size group into one model patch (patch_size x kernel pixels), in
# raster order with its grid position, padded to max_soft_tokens. Gemma 4's Pillow one with kernel 1 and the model
# patch as its patch_size gives the same pixel_values, image_position_ids and soft-token counts: a 32 x 32 image in
# 16-pixel model patches (the tower's 8-pixel patches pooled 2 x 2) gives four image tokens. Its vision_config is
# None by default (the row's values alone): a 64-wide embedder projecting to the text width, a 64-row position table
VISION_TOY_FIXES["gemma4_unified"] = VisionToyFix(
    **{**_GEMMA4, "image_processor": {"max_soft_tokens": 70, "patch_size": 16, "pooling_kernel_size": 1,
                                      "do_resize": False}},
    image_processor_class="Gemma4ImageProcessorPil",
    sub_configs={"vision_config": {"patch_size": 8, "pooling_kernel_size": 2, "mm_embed_dim": 64,
                                   "mm_posemb_size": 64, "output_proj_dims": 64}})

# GOT-OCR 2: its processor takes nested images (one list per prompt, as the toys pass them) only with multi_page
# (a class attribute its __init__ does not take); one page a prompt makes the same text and pixels. It expands
# <imgpad> into num_image_tokens (256) per image tile: a 128-pixel SAM tower in 16-pixel patches (8 x 8, windows
# of 14 pad it), downsampled 4 x 4 into four tokens; smaller neck channels (256) and MLP (3072). The prompt is the
# one the processor builds when given no text (the checkpoints have no chat template)
VISION_TOY_FIXES["got_ocr2"] = VisionToyFix(
    prompt="<|im_start|>system\nYou should follow the instructions carefully and explain your answers in detail."
           "<|im_end|><|im_start|>user\n<img>{image}</img>\nOCR: <|im_end|><|im_start|>assistant\n",
    image_size=(128, 128), image_processor={"size": {"height": 128, "width": 128}}, special_tokens=("</img>",),
    processor_attributes={"multi_page": True, "num_image_tokens": 4}, config={"image_seq_length": 4},
    sub_configs={"vision_config": {"image_size": 128, "global_attn_indexes": [1], "output_channels": 32,
                                   "mlp_dim": 128}})

# Mllama cross-attends to the image (its <|image|> token stays one token; the cross-attention mask starts there):
# 28-pixel tiles in 14-pixel patches (2 x 2 and the class token), up to 4 tiles (the default aspect ratios need 4);
# the tower concatenates its last state with the intermediate layers' (3, 7, 15, 23, 30, past the toy's two: 0 and
# 1 here), so vision_output_dim is 64 x 3; two global layers (8) and the cross-attention layer (3, 8, ...) among
# the text model's three
VISION_TOY_FIXES["mllama"] = VisionToyFix(
    prompt="<|start_header_id|>user<|end_header_id|>\n\n{image}What is in the picture?<|eot_id|>"
           "<|start_header_id|>assistant<|end_header_id|>\n\n",
    special_tokens=("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"), image_size=(28, 28),
    image_processor={"size": {"height": 28, "width": 28}},
    sub_configs={"vision_config": {"image_size": 28, "patch_size": 14, "intermediate_layers_indices": [0, 1],
                                   "num_global_layers": 2, "vision_output_dim": 192},
                 "text_config": {"num_hidden_layers": 3, "cross_attention_layers": [1]}})

# GIT prepends the image's patch embeddings (and the class token's) to the text itself (no image token): a CLIP
# tower at 28 x 28 pixels in 14-pixel patches, five image positions; the prompt is text alone (captioning)
VISION_TOY_FIXES["git"] = VisionToyFix(
    prompt="a picture of", image_size=(28, 28),
    image_processor={"size": {"shortest_edge": 28}, "crop_size": {"height": 28, "width": 28}},
    sub_configs={"vision_config": {"image_size": 28, "patch_size": 14}})
VISION_TOY_FIXES["fuyu"] = VisionToyFix(unsupported=(
    "transformers bug: FuyuProcessor forces return_tensors='pt' on its image processor, then calls its "
    "patchify_image, which in the Pillow FuyuImageProcessorPil reshapes with numpy's transpose(0, 1, 3, 2, 4) "
    "('TypeError: transpose() takes 2 positional arguments but 5 were given' on the torch tensor); the working "
    "FuyuImageProcessor is a TorchvisionBackend, which cannot load beside the CPU torch wheel"))

# Emu3 turns an image into VQ-VAE codes and the codes into text tokens through config.vocabulary_map, whose
# "<|visual token{code:06d}|>" entries spell each code, "<|extra_200|>" the end-of-row token and "<image>" the
# placeholder. The processor cuts 8-fold (downsample_ratio, fixed): a 16 x 16 image (min/max pixels) gives 2 x 2
# codes, 2 x (2 + 1) image tokens with the end-of-row ones; the VQ-VAE downsamples 8-fold too (four levels; its
# GroupNorm's 32 groups: 32 base channels, the width its middle attention, hidden_size, must have). A 16-code book
# on the toy vocabulary's spare <extra_300> ... ids; the placeholder and end-of-row ids are those the toy tokenizer
# gives <image> and <|extra_200|> (322, 321: the processor's literal <|extra_201|>, its eof token as in the
# checkpoints, comes first, then the row's token, then the attributes the processor reads)
_EMU3_VOCABULARY = {"<image>": 322, "<|extra_200|>": 321,
                    **{f"<|visual token{code:06d}|>": 300 + code for code in range(16)}}
VISION_TOY_FIXES["emu3"] = VisionToyFix(
    prompt="{image}What is in the picture?", image_size=(16, 16), special_tokens=("<|extra_200|>",),
    tokenizer_tokens={"eof_token": "<|extra_201|>"},
    image_processor={"min_pixels": 16 * 16, "max_pixels": 16 * 16},
    config={"vocabulary_map": _EMU3_VOCABULARY},
    sub_configs={"vq_config": {"codebook_size": 16, "embed_dim": 16, "latent_channels": 16, "base_channels": 32,
                               "channel_multiplier": [1, 1, 1, 1], "num_res_blocks": 1, "attn_resolutions": [],
                               "hidden_size": 32, "num_attention_heads": 1}})

# dots3 note: the text model's sliding-window layers at toy size as its causal-LM row (head_dim = qk_nope +
# qk_rope; the class derives per_layer_config itself). 56 x 56 pixels make 4 x 4 patches of 14, merged 2 x 2 into
# four image tokens, one frame a patch (temporal_patch_size 1: the tower's patch embedding is a Conv2d). Its
# vision tower keeps 26 layers (its mlp_layer_types list, one MoE layer last): two, dense then sparse. The audio
# tower's convolutions (480 channels) left 4.6M parameters; the adapters map the vision width (adapter_in_dim) and
# the audio width to the text width
_DOTS3_TEXT = {"swa_num_attention_heads": 4, "swa_num_key_value_heads": 4, "swa_q_lora_rank": 32,
               "swa_kv_lora_rank": 32, "swa_head_dim": 32, "swa_qk_nope_head_dim": 16, "swa_v_head_dim": 16}
VISION_TOY_FIXES["dots3_note"] = VisionToyFix(
    prompt="<|img|>{image}<|endofimg|>What is in the picture?", special_tokens=("<|img|>", "<|endofimg|>"),
    image_size=(56, 56), image_processor={"min_pixels": 56 * 56, "max_pixels": 56 * 56, "temporal_patch_size": 1},
    drop=("text_config.per_layer_config", "vision_config.per_layer_config"),
    sub_configs={"text_config": _DOTS3_TEXT,
                 "vision_config": {"adapter_in_dim": 64, "adapter_out_dim": 64, "num_hidden_layers": 2,
                                   "mlp_layer_types": ["dense", "sparse"]},
                 "audio_config": {"adapter_input_size": 64, "adapter_out_dim": 64, "downsample_hidden_size": 16}})

VISION_TOY_FIXES["gemma3n"] = VisionToyFix(unsupported=(
    "its vision tower is a TimmWrapperModel (MobileNetV5), which needs the timm package (not installable beside the "
    "CPU torch wheel): building the model raises 'TimmWrapperModel requires the timm library'"))
VISION_TOY_FIXES["llama4"] = VisionToyFix(unsupported=(
    "its only image processor (Llama4ImageProcessor) needs torchvision, which cannot load beside the CPU torch wheel; "
    "Llama4Processor reads the image processor's aspect_ratios output (tiles per side of each image), which no Pillow "
    "image processor in transformers emits"))

