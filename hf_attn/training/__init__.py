"""Training: the run config, the builders, the accelerate loop, checkpoints, fine-tuning and LoRA.

``train(config)`` is the entry point; ``TrainingConfig`` / ``load_training_config`` describe a
run; ``builders`` builds its corpus, tokenizer, data loader, model and optimizer the same way for every caller.
"""

from .config import TrainingConfig, load_training_config
from .loop import TrainingRun, TrainingSummary, train

__all__ = ["TrainingConfig", "TrainingRun", "TrainingSummary", "load_training_config", "train"]
