rule digits_images:
    input:
        code=script_code("make_digits.py"),
    output:
        images="results/digits/images.h5",
        preview="results/digits/images_preview.png",
        timing="benchmarks/digits/images.tsv",
    log:
        "logs/digits/images.log",
    conda:
        "../envs/latentedit.yaml"
    params:
        digits=sorted_config("digits"),
    script:
        "../workflow_scripts/make_digits.py"
