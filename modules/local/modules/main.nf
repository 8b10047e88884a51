/*
 * MODULES: `fatescope modules` -- co-expression modules per TF from the GRN edges (top-k,
 * percentile and top-N-per-target modules, size filters, the TF included); modules/modules.parquet.
 *
 * Inputs: GRN's adjacency.parquet.
 */

process MODULES {
    label 'process_single'

    input:
    path adjacency, stageAs: 'grn/adjacency.parquet'

    output:
    path "modules", emit: outdir
    path "modules/modules.parquet", emit: modules
    path "modules/modules_report.json", emit: summary
    path "modules/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    fatescope modules --adjacency ${adjacency} --outdir modules ${args}
    """

    stub:
    """
    mkdir -p modules
    touch modules/modules.parquet modules/params.yaml
    echo '{}' > modules/modules_report.json
    echo 'fatescope modules --adjacency grn/adjacency.parquet --outdir modules (stub)' > modules/command.txt
    printf '"FATESCOPE:MODULES":\\n  fatescope: stub\\n' > modules/versions.yml
    """
}
