"""
Emission lines and the BPT diagram
==================================

The second task of the paper: predict the four strong-line fluxes of the
Baldwin, Phillips & Terlevich (1981; BPT) diagram -- [N II] 6584, Hα,
[O III] 5007 and Hβ -- from the image alone, then ask where on the BPT diagram
the galaxies that switch on a given feature sit.

This example uses the ``"bpt_lines"`` target, the demarcation curves of
Kauffmann et al. (2003) and Kewley et al. (2001), and
`sfnet.interpret.plot_bpt`, which colours the diagram by one feature's
activation (the style of the paper's BPT figure).  Settings are tiny so the
page builds quickly; the model is undertrained and its features are only
illustrative.
"""

# %%
# Galaxies with four well-measured lines
# --------------------------------------
# ``select("bpt_lines")`` keeps galaxies whose four lines all have
# signal-to-noise above 3 (and fluxes below 10⁵ in the catalog's units of
# 10⁻¹⁷ erg s⁻¹ cm⁻²), as in the paper, and adds the target columns
# ``log_N2, log_Ha, log_O3, log_Hb``: log10 of the line fluxes.

import numpy as np

from sfnet import SparseFeatureNet, interpret
from sfnet.datasets import make_mock_galaxies

sample = make_mock_galaxies(2000, image_size=48, seed=7, progress=False)
lines = sample.select("bpt_lines")
print(f"{len(lines)} of {len(sample)} galaxies have S/N > 3 in all four lines")
lines.catalog["objID", "log_N2", "log_Ha", "log_O3", "log_Hb"][:5]

# %%
# The measured BPT diagram
# ------------------------
# `~sfnet.interpret.kauffmann03` and `~sfnet.interpret.kewley01` are the two
# demarcation curves (NaN beyond their asymptotes);
# `~sfnet.interpret.bpt_class` sorts galaxies into star-forming, composite and
# AGN with them.  `~sfnet.interpret.line_ratios` returns the two ratios from a
# catalog's fluxes, or from predicted log fluxes.

x, y = interpret.line_ratios(lines)
classes = interpret.bpt_class(x, y)
names, counts = np.unique(classes, return_counts=True)
print(dict(zip(names.tolist(), counts.tolist())))
print("Kauffmann+03 and Kewley+01 at log([NII]/Ha) = -0.4:",
      round(float(interpret.kauffmann03(-0.4)), 3), round(float(interpret.kewley01(-0.4)), 3))

fig = interpret.plot_bpt(lines)

# %%
# Train on the four log fluxes
# ----------------------------
# With a multi-column target the network has one linear head output per line,
# all sharing the same ``k`` active features of each galaxy.

train, valid = lines.split(0.25, seed=0)
model = SparseFeatureNet(k=2, target="bpt_lines", epochs=6, batch_size=32,
                         random_state=0, progress=False).fit(train)
print(model.target_names)
for line, m in model.evaluate(valid).items():
    print(f"{line:7s} RMSE {m['rmse']:.3f} dex   NMAD {m['nmad']:.3f} dex")

# %%
# ``predict`` returns an ``(N, 4)`` array of log fluxes in the target order,
# which `~sfnet.interpret.line_ratios` turns into predicted BPT positions.
# For a well-trained model the predicted classes agree with the measured ones
# for most galaxies; this short run is not there yet.

pred = model.predict(valid)
px, py = interpret.line_ratios(pred)
vx, vy = interpret.line_ratios(valid)
agree = np.mean(interpret.bpt_class(px, py) == interpret.bpt_class(vx, vy))
print(f"predicted BPT class agrees with the measured one for {100 * agree:.0f}% of galaxies")

truth = np.column_stack([valid.catalog[name] for name in model.target_names])
fig = interpret.plot_predictions(truth, pred, target=model.target_)

# %%
# Where does a feature live on the BPT diagram?
# ---------------------------------------------
# Run the whole line sample through the network once and count how often each
# feature fires (`~sfnet.interpret.feature_stats`).  Then colour the BPT
# diagram by the normalised activation of the most frequent feature: galaxies
# where it is inactive stay in the grey density, and the nine galaxies where
# it is strongest are shown beside the diagram, numbered as on it.

acts = model.activations(lines)
stats = interpret.feature_stats(acts, include_dead=False)
print(stats[:5])

feature = int(stats["feature"][0])
fig = interpret.plot_bpt(lines, acts, feature=feature)
# sphinx_gallery_thumbnail_number = 3

# %%
# The same call accepts predicted log fluxes instead of a catalog, to place
# galaxies at their *predicted* BPT positions, and an ``ax`` to draw into an
# existing figure (then the example grid is left out).

import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 2, figsize=(7.6, 3.3), layout="constrained")
interpret.plot_bpt(valid, model.activations(valid), feature=feature, ax=axes[0])
axes[0].set_title("measured lines")
interpret.plot_bpt(pred, model.activations(valid), feature=feature, ax=axes[1])
_ = axes[1].set_title("predicted lines")
