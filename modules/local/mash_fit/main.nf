/*
 * MASH_FIT: `fatescope mash --fit-only` -- the mash fits (mixture weights, grid, covariances, V) of
 * the gene and guide tables in every params.mash_mode, with no posteriors, and the chunk plan
 * mash_fit/mash_chunks.csv (kind, mode, chunk, start, stop, input, fit) that main.nf fans out over
 * MASH_CHUNK tasks. Runs when params.mash_effect_chunk_size splits the posteriors (python engine,
 * no params.mash_fixg_fit); MASH then gathers.
 *
 * Inputs: fate/gene_daywise_for_mash.csv and fate/guide_daywise_for_mash.csv. Label process_gpu:
 * likelihoods on CUDA when params.use_gpu.
 */

process MASH_FIT {
    label 'process_low'
    label 'process_gpu'

    input:
    path gene_daywise, stageAs: 'fate/gene_daywise_for_mash.csv'
    path guide_daywise, stageAs: 'fate/guide_daywise_for_mash.csv'

    output:
    path "mash_fit", emit: outdir
    path "mash_fit/mash_chunks.csv", emit: plan
    path "mash_fit/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    fatescope mash --input ${gene_daywise} --input ${guide_daywise} --fit-only --outdir mash_fit ${args}
    """

    stub:
    """
    mkdir -p mash_fit
    echo 'kind,mode,chunk,start,stop,input,fit' > mash_fit/mash_chunks.csv
    echo 'gene,conservative,0,0,1,fate/gene_daywise_for_mash.csv,mash_gene_conservative_fit.json' >> mash_fit/mash_chunks.csv
    echo '{}' > mash_fit/mash_gene_conservative_fit.json
    touch mash_fit/params.yaml
    echo 'fatescope mash --input fate/gene_daywise_for_mash.csv --fit-only --outdir mash_fit (stub)' > mash_fit/command.txt
    printf '"FATESCOPE:MASH_FIT":\\n  fatescope: stub\\n' > mash_fit/versions.yml
    """
}
