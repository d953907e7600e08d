# Code inputs: every rule that runs a script lists the library files the script reaches through its imports
# (latentedit.code_inputs, read with ast at parse time), so that a change to any of them reruns exactly the jobs
# that run it. Snakemake itself tracks the script file, not what it imports.
from latentedit.code_inputs import library_files

SCRIPTS = Path(workflow.basedir) / "workflow_scripts"


def script_code(script):
    """The library files the workflow script ``script`` (a file name under workflow_scripts/) reaches."""
    return library_files([SCRIPTS / script])


def edit_code(wildcards):
    """train_edit's script, plus the method's trainer module and what it imports (the trainer is imported by name
    from the method registry, which ast cannot follow): editing lt.py reruns the lt/lt_core jobs only.
    """
    trainer = get_method(wildcards.method).trainer
    return library_files([SCRIPTS / "train_edit.py"], modules=[trainer])
