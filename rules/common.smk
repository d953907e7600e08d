# Shared by every stage file: the library on sys.path, the config checks, the wildcard constraints, and (included
# below, one file per concern) the code inputs, the input functions, the params slices and the targets.
import sys
from pathlib import Path

sys.path.insert(
    0, str(Path(workflow.basedir))
)  # parse-time helpers come from this checkout's latentedit, whichever copy the environment holds

from latentedit.config import check_config, dry_run_requested
from latentedit.edits.methods import get_method
from latentedit.forkserver import route_scripts, start_server, stop_server
from latentedit.workflow_scheduler import bound_scheduler_wakeups

# Snakemake's scheduler otherwise starts one more never-ending wake-up chain per finished job (the module's docstring).
bound_scheduler_wakeups()
# Script jobs of a local run start as forks of one process that has imported torch (latentedit.forkserver).
route_scripts()


onstart:
    start_server(workflow)


onsuccess:
    stop_server()


onerror:
    stop_server()


# digits | faces: the {world} wildcard of every shared rule takes this value only.
WORLD = config["world"]
# Every (method, edit) is trained once per seed of edits.seeds; grids and the latent summary show the first.
FIRST_SEED = config["edits"]["seeds"][0]

# Semantic checks beyond the schema (latentedit.config): fail before any job, naming the key. A dry run only warns
# about missing faces files, so that the DAG of a config with placeholder paths can be inspected.
for warning in check_config(
    config, dry_run=dry_run_requested(sys.argv), checkout=workflow.basedir
):
    print(f"warning (dry run): {warning}", file=sys.stderr)


# method/edit/seed match the configured methods, definitions and seeds only (an unconfigured path has no rule).
wildcard_constraints:
    world=WORLD,
    variant="dls|nodls",
    method="|".join(config["edits"]["methods"]),
    edit="|".join(config["edits"]["definitions"]),
    seed="|".join(str(s) for s in config["edits"]["seeds"]),


include: "common/code.smk"
include: "common/inputs.smk"
include: "common/params.smk"
include: "common/targets.smk"
