"""Train the faces world's 40-attribute image classifiers on CelebA-HQ train, early-stopped on val, scored on test
(rule train_attribute_classifier). Images are read from the store batch by batch."""
import numpy as np

from latentedit.faces.attributes import (AttributeClassifierConfig, evaluate_attribute_classifier,
                                         save_attribute_classifier, train_attribute_classifier)
from latentedit.io.atomic import write_json
from latentedit.io.history import write_history
from latentedit.io.image_store import open_image_store
from latentedit.jobs import setup_job
from latentedit.training_utils import pick_device

log = setup_job(snakemake.log[0], snakemake.threads, timing=snakemake.output.timing)
device = pick_device(snakemake.params.device)
cfg = AttributeClassifierConfig(**snakemake.params.classifier)
with open_image_store(snakemake.input.images) as store:
    train, val, test = (store.select(s) for s in ("train", "val", "test"))
    model, history, metrics = train_attribute_classifier(train.images, train.attributes, val.images, val.attributes,
                                                         store.attribute_names, cfg, device)
    metrics["test"] = evaluate_attribute_classifier(model, test.images, test.attributes)
    metrics["test_balanced"] = evaluate_attribute_classifier(model, test.images, test.attributes, balanced=True)
    metrics["n_images"] = {"train": len(train.images), "val": len(val.images), "test": len(test.images)}
metrics["test_mean_accuracy"] = float(np.mean(list(metrics["test"].values())))
metrics["test_mean_balanced_accuracy"] = float(np.mean(list(metrics["test_balanced"].values())))
save_attribute_classifier(snakemake.output.model, model, metrics)
write_json(snakemake.output.metrics, metrics)
write_history(snakemake.output.history, history)
log.info("test accuracy: mean %.3f (balanced %.3f); per attribute %s", metrics["test_mean_accuracy"],
         metrics["test_mean_balanced_accuracy"], {k: round(v, 3) for k, v in metrics["test"].items()})
