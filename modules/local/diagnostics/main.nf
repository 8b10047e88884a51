/*
 * DIAGNOSTICS: `fatescope diagnostics` -- held-out cross-entropy of the full vs the nuisance-only
 * fate model, a permutation negative control (one refit) and the signs of known regulators
 * (params.diag_known_regulators); diagnostics/diagnostics.json, split_counts.csv,
 * permutation_hits.csv, sanity.csv (docs/fate.md). Label process_gpu: the two refits on CUDA when
 * params.use_gpu.
 *
 * Inputs: QC's cells.h5ad, fate-fit's fate_model.pt and theta_posterior_summary.npz, the guide map
 * ([] when there is none), FATE_PROBS's fate_probs.csv ([] when not computed),
 * params.diag_known_regulators ([] when unset).
 */

process DIAGNOSTICS {
    label 'process_low'
    label 'process_gpu'

    input:
    path h5ad, stageAs: 'qc/cells.h5ad'
    path model, stageAs: 'fate/fate_model.pt'
    path theta_summary, stageAs: 'fate/theta_posterior_summary.npz'
    path guide_map
    path fate_probs, stageAs: 'fate_probs/*'
    path known_regulators, stageAs: 'known/*'

    output:
    path "diagnostics", emit: outdir
    path "diagnostics/diagnostics.json", emit: summary
    path "diagnostics/split_counts.csv", emit: split_counts
    path "diagnostics/permutation_hits.csv", emit: permutation_hits
    path "diagnostics/sanity.csv", emit: sanity
    path "diagnostics/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    def guide_map_arg = guide_map ? "--guide-map ${guide_map}" : ''
    def known_arg = known_regulators ? "--known-regulators ${known_regulators}" : ''
    def fate_probs_arg = fate_probs ? "--fate-probs ${fate_probs}" : ''
    """
    fatescope diagnostics --input ${h5ad} --model ${model} --theta-summary ${theta_summary} --outdir diagnostics ${guide_map_arg} ${fate_probs_arg} ${known_arg} ${args}
    """

    stub:
    """
    mkdir -p diagnostics
    echo '{}' > diagnostics/diagnostics.json
    echo 'split,n_cells' > diagnostics/split_counts.csv
    echo 'fate,n_hits' > diagnostics/permutation_hits.csv
    echo 'gene,expected_sign' > diagnostics/sanity.csv
    touch diagnostics/params.yaml
    echo 'fatescope diagnostics --input qc/cells.h5ad --outdir diagnostics (stub)' > diagnostics/command.txt
    printf '"FATESCOPE:DIAGNOSTICS":\\n  fatescope: stub\\n' > diagnostics/versions.yml
    """
}
