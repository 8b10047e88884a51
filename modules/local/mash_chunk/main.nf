/*
 * MASH_CHUNK: `fatescope mash --fixg-fit ... --effect-chunk K` -- mash posteriors of one chunk of
 * params.mash_effect_chunk_size effects of one table, under MASH_FIT's fit of that table and mode.
 * Effects are independent given the fit, so MASH's gather gives the one-task posteriors to the bit.
 *
 * Inputs: the two daywise tables (the task reads its kind's); MASH_FIT's folder; [kind, mode,
 * chunk] from a row of MASH_FIT's mash_chunks.csv. Label process_gpu: CUDA when params.use_gpu.
 */

process MASH_CHUNK {
    tag "${kind} ${mode} ${chunk}"
    label 'process_low'
    label 'process_gpu'

    input:
    path gene_daywise, stageAs: 'fate/gene_daywise_for_mash.csv'
    path guide_daywise, stageAs: 'fate/guide_daywise_for_mash.csv'
    path fits, stageAs: 'mash_fit'
    tuple val(kind), val(mode), val(chunk)

    output:
    path "mash_chunk", emit: outdir
    path "mash_chunk/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    def table = kind == 'gene' ? gene_daywise : guide_daywise
    """
    fatescope mash --input ${table} --fixg-fit ${fits}/mash_${kind}_${mode}_fit.json --effect-chunk ${chunk} --outdir mash_chunk ${args}
    """

    stub:
    """
    mkdir -p mash_chunk
    touch mash_chunk/mash_chunk.csv mash_chunk/mash_chunk.json mash_chunk/params.yaml
    echo 'fatescope mash --input fate/${kind}_daywise_for_mash.csv --effect-chunk ${chunk} --outdir mash_chunk (stub)' > mash_chunk/command.txt
    printf '"FATESCOPE:MASH_CHUNK":\\n  fatescope: stub\\n' > mash_chunk/versions.yml
    """
}
