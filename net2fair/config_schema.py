"""The typed schema of a config: one dataclass per section, and the error type of configs.

This schema is also the format of the ``config.yaml`` saved with every run and every model
folder, so a model always carries the exact architecture it was built with. Loading and
layering live in :mod:`net2fair.config`, the value checks in :mod:`net2fair.config_checks`;
import all three from :mod:`net2fair.config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Bumped when the saved config or weight layout changes incompatibly.
FORMAT_VERSION = 1


class ConfigError(ValueError):
    """A configuration problem; the message is one line meant for the user."""


@dataclass
class DataConfig:
    #: dataset name -> image folder (recursive). At least two for training.
    domains: dict[str, str] = field(default_factory=dict)
    resolution: int = 64
    #: random horizontal flips during autoencoder training (and flipped latents in the cache)
    flip: bool = True
    #: share of each folder held out for validation, chosen by a stable hash of the path
    val_fraction: float = 0.05
    #: decode every image once into memory (None: when it fits in 2 GiB)
    preload: bool | None = None
    num_workers: int = 0


@dataclass
class AutoencoderConfig:
    z_dim: int = 64
    #: channel width after each stride-2 step (64 px -> 32 -> 16 -> 8 -> 4); the list is
    #: extended with its last value or cut to the number of steps the resolution needs.
    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    res_blocks: int = 1
    #: conv arch: residual blocks at each decoder level, listed like ``channels`` (the finest
    #: level first, extended with its last value); empty: ``res_blocks`` at every level.
    #: Blocks at the fine levels cost few weights and are where eyes and outlines are drawn
    decoder_res_blocks: list[int] = field(default_factory=list)
    #: "conv": the lean convolutional VAE (net2fair.models.autoencoder); "net2net": the
    #: paper's ResNet encoder + BigGAN decoder (net2fair.models.paper_autoencoder, 128 or
    #: 256 px, z_dim > 20 x its generator blocks), which its released models use
    arch: str = "conv"
    #: net2net arch: the encoder's torchvision ResNet
    resnet: str = "resnet101"
    #: net2net arch: the BigGAN channel unit (the paper's 256 px model: 96)
    biggan_chn: int = 96
    #: net2net arch: how often the encoder's input is normalised with the ImageNet mean and
    #: std (the paper's code does it twice, and its weights expect that)
    imagenet_normalize: int = 2


@dataclass
class FlowConfig:
    n_flows: int = 8
    hidden_dim: int = 256
    hidden_depth: int = 2
    embedding_dim: int = 16
    embedder_hidden_dim: int = 64
    embedder_depth: int = 1
    #: "none" (identity, as in the paper's face models) or "lrelu"
    activation: str = "none"


@dataclass
class LossConfig:
    l1_weight: float = 1.0
    perceptual_weight: float = 1.0
    lpips_net: str = "alex"
    #: stage 1: weight of the L1 loss on fine chroma detail (models.losses.chroma_detail_l1),
    #: which removes the colour confetti LPIPS on AlexNet misses at 64 px
    #: (docs/stage1-fidelity.md). 0 = off
    chroma_weight: float = 4.0
    #: stage 1: weight of an extra L1 loss on the eye band of aligned faces
    #: (models.losses.eye_band_l1), where eyes and glasses are a few pixels each: without
    #: it a small decoder draws faint glasses on every face (docs/stage1-fidelity.md). 0 = off
    eye_weight: float = 1.0
    kl_weight: float = 1.0e-6
    #: adversarial loss weight; 0 = off, the default: at 64 px the discriminator is what
    #: fills the eye band with colour confetti (docs/stage1-fidelity.md). The paper's recipe
    #: (configs/ffhq_celebahq_celeba.yaml) turns it on late in a long run
    disc_weight: float = 0.0
    #: autoencoder step at which the adversarial loss is switched on
    disc_start: int = 2000
    disc_channels: int = 32
    disc_layers: int = 2
    #: stage 1: weight of the equivariance prior (net2fair.models.equivariance): the code
    #: of an image warped by a random shift, scaling and rotation should move along one
    #: linear map of the warp's parameters, the same in every dataset, so that position,
    #: size and tilt have shared coordinates a projection can keep. 0 = off (the paper)
    equivariance_weight: float = 0.0
    #: the prior is off before this autoencoder step and its weight rises linearly to
    #: equivariance_weight over the next equivariance_ramp steps: on a code that does not
    #: reconstruct anything yet, the warps' effect is noise, and the prior stalls learning
    equivariance_start: int = 0
    equivariance_ramp: int = 0
    #: largest warp of that prior: shift (fraction of the side), relative size change and
    #: rotation (degrees); match them to how much aligned faces vary in the data
    equivariance_shift: float = 0.04
    equivariance_scale: float = 0.1
    equivariance_rotation: float = 15.0


@dataclass
class StageConfig:
    steps: int = 1000
    batch_size: int = 64
    lr: float = 2.0e-4
    warmup_steps: int = 0
    #: cosine decay from lr to lr * min_lr_ratio over the steps (1.0 = constant)
    min_lr_ratio: float = 1.0
    log_every: int = 25
    val_every: int = 500
    ckpt_every: int = 500


@dataclass
class AutoencoderStageConfig(StageConfig):
    """Stage 1 also bounds its validation (stage 2 validates on every cached latent)."""

    #: validation batches (of batch_size) per validation; 0 = the whole split
    val_batches: int = 8
    #: Adam's (beta1, beta2) for the autoencoder and the discriminator; the paper's code uses
    #: the adversarial setting (0.5, 0.9), which only slows training without a discriminator
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])


@dataclass
class TrainConfig:
    autoencoder: AutoencoderStageConfig = field(
        default_factory=lambda: AutoencoderStageConfig(steps=3000, batch_size=64, lr=2.0e-4)
    )
    cinn: StageConfig = field(
        default_factory=lambda: StageConfig(
            steps=4000, batch_size=256, lr=1.0e-3, warmup_steps=100, min_lr_ratio=0.05
        )
    )
    #: "32"; "bf16": the autoencoder's forward pass under bfloat16 autocast (CUDA and CPU);
    #: "16-mixed": float16 autocast with loss scaling (CUDA only; float32 on CPU)
    precision: str = "32"
    #: a model folder or run folder whose autoencoder stage 2 starts from (skips stage 1)
    autoencoder_from: str | None = None


@dataclass
class ModelMeta:
    """Filled in by training: what the model knows about its datasets."""

    domains: list[str] = field(default_factory=list)
    priors: list[float] = field(default_factory=list)
    package_version: str = ""
    format_version: int = FORMAT_VERSION
    #: free text: where the data came from (folders, benchmark seed)
    provenance: str = ""
    #: sha256 of model.safetensors, checked on load (catches truncation and tampering)
    weights_sha256: str = ""


@dataclass
class Config:
    name: str = "net2fair"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    model: ModelMeta = field(default_factory=ModelMeta)
