"""
Interpreting the sparse features
================================

Every prediction of an SFNet is ``bias + sum_j w_j a_j`` over at most ``k``
active features, so a trained model can be read feature by feature: how often
does it fire, in which galaxies, how does it track metallicity, stellar mass or
star formation, where in the image does it respond, and how much would the
predictions suffer without it?

This example trains a tiny metallicity model on the mock and runs every
analysis and figure of `sfnet.interpret` on it.  With so little training the
features are not yet physically meaningful; the same calls on a model from
``sfnet demo`` or ``sfnet train`` are what the paper's figures are made of.
"""

# %%
# A small trained model
# ---------------------

import numpy as np

from sfnet import SparseFeatureNet, interpret
from sfnet.datasets import make_mock_galaxies

sample = make_mock_galaxies(2000, image_size=64, seed=3, progress=False)
galaxies = sample.select("metallicity")
train, valid = galaxies.split(0.25, seed=0)
model = SparseFeatureNet(k=4, epochs=6, batch_size=32, random_state=1,
                         progress=False).fit(train)
fig = interpret.plot_history(model.history_, target_names=model.target_names)

# %%
# Activations, once
# -----------------
# Every analysis below takes the activations as an argument, so a large sample
# goes through the network only once.  ``activations(X)`` is a dense
# ``(N, n_features)`` float32 array; ``activations(X, sparse=True)`` returns
# ``(indices, values)`` of shape ``(N, k)`` instead, which is what you want for
# millions of galaxies.  Both describe the same numbers.

acts = model.activations(galaxies)
indices, values = model.activations(galaxies, sparse=True)
dense = SparseFeatureNet.sparse_to_dense(indices, values, model.n_features)
print(acts.shape, indices.shape, "identical:", np.array_equal(dense, acts))

# %%
# How often each feature fires
# ----------------------------
# `~sfnet.interpret.feature_stats` gives, per feature, the number and fraction
# of galaxies where it is active and its mean and largest activation; the
# table's ``meta`` summarises the dead features.  The feature-density
# histogram is the usual sparse-autoencoder diagnostic: most of the 512
# features never fire, and the live ones are spread over orders of magnitude
# in frequency.

stats = interpret.feature_stats(acts, include_dead=False)
print({key: stats.meta[key] for key in ("n_galaxies", "n_active_features", "n_dead")})
stats[:8]

# %%

fig = interpret.plot_feature_density(acts)

# %%
# One galaxy's prediction, term by term
# -------------------------------------
# `~sfnet.interpret.contributions` lists each galaxy's active features with
# their activation ``a_j`` and contribution ``w_j a_j``; with the bias they
# add up to the prediction exactly.

table = interpret.contributions(model, acts, ids=galaxies.catalog["objID"])
row = table[0]
print("objID", row["objID"])
for f, a, c in zip(row["feature"], row["activation"], row["contribution_oh_p50"]):
    if f >= 0:
        print(f"  feature {f:3d}: activation {a:6.3f} -> {c:+.4f} dex")
print(f"  bias {row['bias_oh_p50']:.4f} -> prediction {row['prediction_oh_p50']:.4f} dex "
      f"(predict: {model.predict(galaxies[:1])[0]:.4f})")

# %%
# The galaxies that switch a feature on
# -------------------------------------
# `~sfnet.interpret.plot_max_activating` shows the galaxies with the largest
# activation of a feature, with their metallicity and stellar mass.

feature = int(stats["feature"][0])
fig = interpret.plot_max_activating(galaxies, acts, feature, n=9)
# sphinx_gallery_thumbnail_number = 3

# %%
# Activation against a physical property
# --------------------------------------
# Points are the galaxies where the feature is active, the rug at zero those
# where it is not, and the line the binned mean activation (inactive galaxies
# counting as zero).  The legend gives the Pearson and Spearman coefficients
# and the feature's weight in the linear head: a feature with a positive
# weight raises the predicted metallicity when it fires.

fig = interpret.plot_activation_vs(galaxies, acts, feature, "metallicity", model=model)

# %%
# Correlations with every property at once
# ----------------------------------------
# `~sfnet.interpret.feature_correlations` tabulates, for each active feature,
# its head weight and its correlation with metallicity, stellar mass, SFR,
# specific SFR, the BPT line ratios and redshift (whichever the catalog
# provides).  `~sfnet.interpret.plot_property_correlations` draws the same as a
# heat map.

corr = interpret.feature_correlations(galaxies, acts, model=model)
corr["feature", "n_active", "weight_oh_p50", "spearman_metallicity", "spearman_mass"][:8]

# %%

fig = interpret.plot_property_correlations(galaxies, acts, model=model)

# %%
# Features against each other
# ---------------------------
# The feature-feature correlation matrix (zeros included, so two features that
# never fire together are anti-correlated) shows which features are
# redundant and which split the galaxies between them.

fig = interpret.plot_feature_correlations(acts)

# %%
# Ablation: how many features does the model need?
# ------------------------------------------------
# `~sfnet.interpret.ablation` recomputes the predictions from the activations
# and the linear head while keeping only the N most frequent features (the
# paper's experiment), and while zeroing one feature at a time.  No network
# is run again.

result = interpret.ablation(model, valid, activations=model.activations(valid))
print("full RMSE:", {name: round(v, 4) for name, v in result.full_rmse.items()})
result.per_feature[:5]

# %%

fig = interpret.plot_ablation(result)

# %%
# Where in the galaxy does a feature fire?
# ----------------------------------------
# A pooled feature is the spatial mean of one channel of the ResNet's last
# block (``layer4``).  `~sfnet.interpret.localization_maps` upsamples that
# channel map onto the image the network sees; its mean over the pixels is the
# feature's value before the top-k.  Gradients through the top-k layer are zero
# for features that were not selected, so the channel map, not a gradient
# saliency map, is the right tool here.  (At 64 pixels the map is 2 x 2
# cells; with the paper's 144-pixel crops it is 5 x 5.)

maps = interpret.localization_maps(model, galaxies[:4], feature)
pre_topk = model.pooled_features(galaxies[:4])[:, feature]
print(maps.shape, np.allclose(maps.mean(axis=(1, 2)), pre_topk, rtol=1e-3, atol=1e-5))

fig = interpret.plot_localization(model, galaxies, feature, n=6, activations=acts)

# %%
# Everything in one report
# ------------------------
# `~sfnet.interpret.write_report` writes a static, self-contained
# ``report.html`` (no JavaScript, figures as PNG files beside it) with the
# model card and one section per active feature.  It is what ``sfnet demo``
# and ``sfnet interpret`` produce.  Here it goes into a temporary folder.

import tempfile
from pathlib import Path

with tempfile.TemporaryDirectory() as tmp:
    path = interpret.write_report(model, valid, tmp, max_features=2, n_localization=2)
    print(Path(path).name, len(list(Path(tmp).rglob("*.png"))), "figures")
