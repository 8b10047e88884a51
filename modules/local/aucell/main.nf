/*
 * AUCELL: `fatescope aucell` -- regulon activity per cell (ctxcore AUCell semantics), streamed
 * over cells in batches: aucell/aucell.parquet and aucell/cells.h5ad with obsm["X_aucell"].
 *
 * Inputs: QC's cells.h5ad; PRUNE's regulons.parquet; the AUCELL_CHUNK folders when
 * params.aucell_chunk_size splits the scoring over tasks ([] otherwise): then this task only gathers
 * them (`--gather`: the one-task outputs, to the bit; the on/off calls need every cell). Label
 * process_gpu: CUDA when params.use_gpu, else CPU.
 */

process AUCELL {
    label 'process_medium'
    label 'process_gpu'

    input:
    path h5ad, stageAs: 'qc/cells.h5ad'
    path regulons, stageAs: 'prune/regulons.parquet'
    path chunks, stageAs: 'chunks/??/*'

    output:
    path "aucell", emit: outdir
    path "aucell/aucell.parquet", emit: matrix
    path "cells.h5ad", emit: h5ad  // in aucell/ too only with task.ext.save_h5ad (lean publishing)
    path "aucell/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    def keep_h5ad = task.ext.save_h5ad ?: false  // lean publishing: conf/modules.config
    def gather = (chunks instanceof List ? chunks : [chunks]).collect { chunk -> "--gather ${chunk}" }.join(' ')
    """
    fatescope aucell --cells ${h5ad} --regulons ${regulons} --outdir aucell ${gather} ${args}
    ${keep_h5ad ? 'ln aucell/cells.h5ad cells.h5ad || cp aucell/cells.h5ad cells.h5ad' : 'mv aucell/cells.h5ad cells.h5ad'}
    """

    stub:
    def keep_h5ad = task.ext.save_h5ad ?: false
    """
    mkdir -p aucell
    touch cells.h5ad aucell/aucell.parquet aucell/params.yaml
    ${keep_h5ad ? 'cp cells.h5ad aucell/cells.h5ad' : ''}
    echo 'fatescope aucell --cells qc/cells.h5ad --outdir aucell (stub)' > aucell/command.txt
    printf '"FATESCOPE:AUCELL":\\n  fatescope: stub\\n' > aucell/versions.yml
    """
}
