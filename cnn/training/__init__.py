"""The training loop: data adapters, the epoch iterator, the trainer and the strategies that
spread a batch over processes (``workers``)."""
