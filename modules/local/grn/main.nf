/*
 * GRN: `fatescope grn` -- RegDiffusion on log-normalised expression of QC's cells; TF -> target
 * edges above params.grn_sparsity_threshold (grn/adjacency.parquet), the model state and a report
 * of the TFs found in the data (docs/regulons.md).
 *
 * Inputs: QC's cells.h5ad; the TF list file (main.nf resolves 'human'/'mouse' to the bundled
 * lists in assets/tf_lists/). Label process_gpu: CUDA when params.use_gpu, else CPU.
 */

process GRN {
    label 'process_medium'
    label 'process_gpu'

    input:
    path h5ad, stageAs: 'qc/cells.h5ad'
    path tf_list, stageAs: 'tf_list/*'

    output:
    path "grn", emit: outdir
    path "grn/adjacency.parquet", emit: adjacency
    path "grn/grn_report.json", emit: summary
    path "grn/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    fatescope grn --cells ${h5ad} --tf-list ${tf_list} --outdir grn ${args}
    """

    stub:
    """
    mkdir -p grn/model
    touch grn/adjacency.parquet grn/params.yaml
    echo '{}' > grn/grn_report.json
    echo 'fatescope grn --cells qc/cells.h5ad --outdir grn (stub)' > grn/command.txt
    printf '"FATESCOPE:GRN":\\n  fatescope: stub\\n' > grn/versions.yml
    """
}
