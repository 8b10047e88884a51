/*
 * FATE_PROBS: `fatescope fate-probs` -- per-cell fate probabilities when a sample brings none:
 * CellRank's pseudotime kernel (soft scheme) on EMBED's kNN graph and absorption probabilities
 * into terminal states; fate_probs/fate_probs.csv (for FATE_FIT and DIAGNOSTICS),
 * terminal_states.csv, transition_matrix.npz, fate_probs.json, cells.h5ad (docs/fate_probs.md).
 *
 * Inputs: EMBED's cells.h5ad; a table of cell annotations holding params.fate_probs_terminal_key
 * ([] when none: the column is read from the cells' obs).
 */

process FATE_PROBS {
    label 'process_low'

    input:
    path h5ad, stageAs: 'embed/cells.h5ad'
    path labels, stageAs: 'labels/*'

    output:
    path "fate_probs", emit: outdir
    path "fate_probs/fate_probs.csv", emit: table
    path "cells.h5ad", emit: h5ad  // in fate_probs/ too only with task.ext.save_h5ad (lean publishing)
    path "fate_probs/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    def keep_h5ad = task.ext.save_h5ad ?: false  // lean publishing: conf/modules.config
    def labels_arg = labels ? "--labels ${labels}" : ''
    """
    fatescope fate-probs --input ${h5ad} --outdir fate_probs ${labels_arg} ${args}
    ${keep_h5ad ? 'ln fate_probs/cells.h5ad cells.h5ad || cp fate_probs/cells.h5ad cells.h5ad' : 'mv fate_probs/cells.h5ad cells.h5ad'}
    """

    stub:
    def keep_h5ad = task.ext.save_h5ad ?: false
    """
    mkdir -p fate_probs
    touch cells.h5ad
    ${keep_h5ad ? 'cp cells.h5ad fate_probs/cells.h5ad' : ''}
    echo 'cell,EC,MES,NEU' > fate_probs/fate_probs.csv
    echo 'cell,terminal_state' > fate_probs/terminal_states.csv
    touch fate_probs/transition_matrix.npz fate_probs/params.yaml
    echo '{}' > fate_probs/fate_probs.json
    echo 'fatescope fate-probs --input embed/cells.h5ad --outdir fate_probs (stub)' > fate_probs/command.txt
    printf '"FATESCOPE:FATE_PROBS":\\n  fatescope: stub\\n' > fate_probs/versions.yml
    """
}
