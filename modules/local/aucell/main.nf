/*
 * AUCELL: `fatescope aucell` -- regulon activity per cell (ctxcore AUCell semantics), streamed
 * over cells in batches: aucell/aucell.parquet and aucell/cells.h5ad with obsm["X_aucell"].
 *
 * Inputs: QC's cells.h5ad; PRUNE's regulons.parquet. Label process_gpu: CUDA when
 * params.use_gpu, else CPU.
 */

process AUCELL {
    label 'process_gpu'

    input:
    path h5ad, stageAs: 'qc/cells.h5ad'
    path regulons, stageAs: 'prune/regulons.parquet'

    output:
    path "aucell", emit: outdir
    path "aucell/aucell.parquet", emit: matrix
    path "aucell/cells.h5ad", emit: h5ad
    path "aucell/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    fatescope aucell --cells ${h5ad} --regulons ${regulons} --outdir aucell ${args}
    """

    stub:
    """
    mkdir -p aucell
    touch aucell/aucell.parquet aucell/cells.h5ad aucell/params.yaml
    echo 'fatescope aucell --cells qc/cells.h5ad --outdir aucell (stub)' > aucell/command.txt
    printf '"FATESCOPE:AUCELL":\\n  fatescope: stub\\n' > aucell/versions.yml
    """
}
