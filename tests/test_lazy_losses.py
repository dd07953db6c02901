"""Reading the losses back from the device only every few steps, as the Trainer does on a GPU (each
read waits for the device to finish): the same history, and a NaN found late is still never saved."""
from __future__ import annotations

import pytest
import torch

from cyclegan_edu import train
from cyclegan_edu.config import get_preset
from cyclegan_edu.train import Trainer, read_checkpoint


def tiny(**changes):
    return get_preset("ci", ngf=4, ndf=4, n_blocks=1, device="cpu", precision="fp32", **changes)


def without_time(history):
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


def test_losses_read_every_k_steps_record_the_same_history(tiny_folder):
    config = tiny(batch_size=4, iters=5, iters_decay=2, log_every=2)
    every_step = Trainer(config, tiny_folder, progress=False)
    assert every_step.read_every == 1                         # on the CPU
    every_step.fit()
    lazily = Trainer(config, tiny_folder, progress=False)
    lazily.read_every = 3
    lazily.fit()
    assert [r["step"] for r in lazily.history] == [2, 4, 5]
    assert without_time(lazily.history) == without_time(every_step.history)


def test_a_nan_read_late_names_its_step_and_is_never_saved(tiny_folder, tmp_path):
    """Read every 3 steps, a checkpoint every 2: the NaN of step 4 is read when its checkpoint is
    about to be written, which then is not, nor any other; the checkpoint of step 2 stays."""
    trainer = Trainer(tiny(batch_size=4, iters=8, iters_decay=4, checkpoint_every=2), tiny_folder,
                      out=tmp_path / "run", progress=False)
    trainer.read_every = 3

    def nan_in_step_4(module, inputs, output):
        return output * float("nan") if trainer.step == 3 else output

    trainer.model.D_B.register_forward_hook(nan_in_step_4)
    with pytest.raises(train.TrainingDiverged, match=r"^step 4: loss G_AB_gan is nan; the last good checkpoint "
                                                     r"\(step 2\) is kept"):
        trainer.fit()
    state = read_checkpoint(tmp_path / "run")
    assert state["step"] == 2 and all(v.isfinite().all() for v in state["nets"].values() if v.is_floating_point())


def test_losses_of_a_float64_model_are_read_without_rounding():
    from cyclegan_edu.models import TranslationModel
    value = torch.tensor(1 / 3, dtype=torch.float64)
    read = TranslationModel.read_losses(None, {"a": value, "b": torch.tensor(0.5)})
    assert read["a"] == 1 / 3 and read["b"] == 0.5
    assert TranslationModel.read_losses(None, {"a": torch.tensor(0.1)})["a"] == float(torch.tensor(0.1))
