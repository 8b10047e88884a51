/*
 * AUCELL_CHUNK: `fatescope aucell --chunk K` -- AUCell of one chunk of cells (params.aucell_chunk_size
 * cells from cell K x size), read from the backed h5ad; aucell_chunk/ for AUCELL's gather. Cells
 * are scored independently (the tie-breaking gene shuffle is drawn once from the seed), so the
 * gathered table is the one-task table to the bit.
 *
 * Inputs: QC's cells.h5ad; PRUNE's regulons.parquet; the chunk index (main.nf: one per chunk of
 * the cells QC kept). Label process_gpu: CUDA when params.use_gpu, else CPU.
 */

process AUCELL_CHUNK {
    tag "chunk ${chunk}"
    label 'process_low'
    label 'process_gpu'

    input:
    path h5ad, stageAs: 'qc/cells.h5ad'
    path regulons, stageAs: 'prune/regulons.parquet'
    val chunk

    output:
    path "aucell_chunk", emit: outdir
    path "aucell_chunk/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    fatescope aucell --cells ${h5ad} --regulons ${regulons} --chunk ${chunk} --outdir aucell_chunk ${args}
    """

    stub:
    """
    mkdir -p aucell_chunk
    touch aucell_chunk/aucell_chunk.parquet aucell_chunk/aucell_chunk.json aucell_chunk/params.yaml
    echo 'fatescope aucell --cells qc/cells.h5ad --chunk ${chunk} --outdir aucell_chunk (stub)' > aucell_chunk/command.txt
    printf '"FATESCOPE:AUCELL_CHUNK":\\n  fatescope: stub\\n' > aucell_chunk/versions.yml
    """
}
