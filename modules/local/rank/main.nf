/*
 * RANK: `fatescope rank` -- daywise and any-day hits from MASH's gene-level posteriors, ranked
 * (rank/hits_ranked.csv), and the conservative vs enriched comparison (mash_mode_comparison.csv).
 *
 * Inputs: mash/mash_gene_conservative.csv and mash/mash_gene_enriched.csv ([] when params.mash_mode
 * is 'conservative' alone: hits without the mode comparison).
 */

process RANK {
    label 'process_single'

    input:
    path gene_conservative, stageAs: 'mash/mash_gene_conservative.csv'
    path gene_enriched, stageAs: 'mash/mash_gene_enriched.csv'

    output:
    path "rank", emit: outdir
    path "rank/hits_ranked.csv", emit: hits
    path "rank/mash_mode_comparison.csv", emit: comparison
    path "rank/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    def enriched_arg = gene_enriched ? "--enriched ${gene_enriched}" : ''
    """
    fatescope rank --conservative ${gene_conservative} ${enriched_arg} --outdir rank ${args}
    """

    stub:
    """
    mkdir -p rank
    echo 'gene,rank,hit_anyday' > rank/hits_ranked.csv
    echo 'gene' > rank/mash_mode_comparison.csv
    touch rank/params.yaml
    echo 'fatescope rank --conservative mash/mash_gene_conservative.csv --outdir rank (stub)' > rank/command.txt
    printf '"FATESCOPE:RANK":\\n  fatescope: stub\\n' > rank/versions.yml
    """
}
