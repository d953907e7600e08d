"""Train one edit model, for the (method, edit) of the job's wildcards (rule train_edit)."""
from latentedit.edits.components import load_generator_network
from latentedit.edits.model import save_edit
from latentedit.edits.train import train_edit
from latentedit.io.atomic import write_json
from latentedit.io.history import write_history
from latentedit.io.latent_store import read_latent_store
from latentedit.jobs import setup_job
from latentedit.labels.classifiers import load_latent_classifiers
from latentedit.labels.correlations import read_correlations
from latentedit.training_utils import pick_device
from latentedit.wstar.realnvp import load_wstar

log = setup_job(snakemake.log[0], snakemake.threads, timing=snakemake.output.timing)
device = pick_device(snakemake.params.device)
method, edit = snakemake.wildcards.method, snakemake.wildcards.edit
store = read_latent_store(snakemake.input.latents)
classifier, gamma = None, None
if snakemake.input.get("classifiers"):  # only the methods that use F and γ get them as inputs
    classifier = load_latent_classifiers(snakemake.input.classifiers, device)
    gamma, _ = read_correlations(snakemake.input.correlations, store.attribute_names)
wstar = load_wstar(snakemake.input.wstar) if snakemake.input.get("wstar") else None  # methods in W* only
generator = None
if snakemake.input.get("generator"):  # only the methods that read the generator (GANSpace, SeFa) get it
    generator = load_generator_network(snakemake.wildcards.world, snakemake.input.generator, device)
model, history, options = train_edit(method, store, snakemake.params.definition, classifier, gamma,
                                     snakemake.params.options, name=edit,
                                     weight_attributes=snakemake.params.weight_attributes, device=device,
                                     wstar=wstar, generator=generator)
save_edit(snakemake.output.model, model)
write_json(snakemake.output.options, options)
write_history(snakemake.output.history, history)  # the curves: rule edit_curves, one figure per edit
