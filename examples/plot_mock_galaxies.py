"""
The SDSS-like mock galaxies
===========================

sfnet ships with a physically motivated mock of the SDSS main galaxy sample
(`~sfnet.datasets.make_mock_galaxies`) so that everything runs offline.  Its
catalog has the columns, units and missing values of the real SkyServer /
MPA-JHU query, and its images are SDSS-style *gri* colour composites.  This
page shows the three things an astronomer checks first: what the galaxies look
like across the stellar mass -- specific star formation rate plane, the
mass--metallicity relation, and the BPT diagram.
"""

# %%
# Generate a sample
# -----------------
# A few thousand galaxies at 64 pixels (the paper's 41.9" field of view) take
# a few seconds.  The same seed always gives the same galaxies.

import cmasher as cmr
import matplotlib.pyplot as plt
import numpy as np

from sfnet.datasets import make_mock_galaxies

sample = make_mock_galaxies(4000, image_size=64, seed=2025, progress=False)
cat = sample.catalog
print(f"{len(sample)} galaxies, {cat.meta['pixel_scale']:.3f} arcsec/pixel")
print(f"oracle RMSE of oh_p50 (hidden scatter): {cat.meta['oracle_rmse']:.3f} dex")

# %%
# Galaxies across the mass -- sSFR plane
# --------------------------------------
# Each cell shows a well-resolved galaxy (80th percentile in size) near its
# centre.  Massive, passive galaxies
# (bottom right) are red, smooth and bulge dominated; star-forming disks (top)
# are blue, often clumpy, and reddened by dust when seen edge on.

logm = np.asarray(cat["lgm_tot_p50"])
ssfr = np.asarray(cat["sfr_tot_p50"]) - logm
ok = logm > 0
size = np.asarray(cat["petroR90_r"])
x_edges = np.linspace(9.2, 11.6, 7)
y_edges = np.linspace(-12.75, -9.25, 6)

fig, ax = plt.subplots(figsize=(9, 7.5))
for i in range(len(x_edges) - 1):
    for j in range(len(y_edges) - 1):
        x0, x1, y0, y1 = x_edges[i], x_edges[i + 1], y_edges[j], y_edges[j + 1]
        inside = ok & (logm >= x0) & (logm < x1) & (ssfr >= y0) & (ssfr < y1)
        if not inside.any():
            continue
        d2 = ((logm - (x0 + x1) / 2) / (x1 - x0)) ** 2 + ((ssfr - (y0 + y1) / 2) / (y1 - y0)) ** 2
        central = inside & (d2 < 0.1) if np.any(inside & (d2 < 0.1)) else inside
        cand = np.flatnonzero(central)
        best = cand[np.argsort(size[cand])[int(0.8 * (cand.size - 1))]]
        ax.imshow(sample.images[best], origin="lower", extent=(x0, x1, y0, y1),
                  interpolation="nearest")
ax.set_xlim(x_edges[0], x_edges[-1])
ax.set_ylim(y_edges[0], y_edges[-1])
ax.set_aspect("auto")
ax.set_xticks(x_edges)
ax.set_yticks(y_edges)
ax.grid(color="white", linewidth=1.5)
ax.set_xlabel(r"$\log\,M_\star/M_\odot$  (lgm_tot_p50)")
ax.set_ylabel(r"$\log\,{\rm sSFR}\ [{\rm yr}^{-1}]$  (sfr_tot_p50 $-$ lgm_tot_p50)")
ax.set_title("Mock SDSS galaxies ordered by stellar mass and specific SFR")

# %%
# The mass--metallicity relation
# ------------------------------
# Star-forming galaxies (``bptclass == 1``) carry a Tremonti et al. (2004)
# scale metallicity; the others have the MPA-JHU missing value -9999 and are
# removed by ``select("metallicity")``.  The binned medians follow the
# Tremonti et al. (2004) fit; the scatter around it comes from the star
# formation rate (Mannucci et al. 2010), galaxy size (Ellison et al. 2008) and
# a hidden term no image can reveal.

sf = sample.select("metallicity")
m_sf = np.asarray(sf.catalog["lgm_tot_p50"])
oh = np.asarray(sf.catalog["oh_p50"])

fig, ax = plt.subplots(figsize=(7, 5.5))
hb = ax.hexbin(m_sf, oh, gridsize=35, extent=(8.5, 11.5, 8.2, 9.4), mincnt=1,
               cmap=cmr.torch_r, bins="log")
fig.colorbar(hb, ax=ax, label="galaxies per cell")
edges = np.arange(8.6, 11.41, 0.2)
centre = 0.5 * (edges[1:] + edges[:-1])
idx = np.digitize(m_sf, edges) - 1
med = np.array([np.median(oh[idx == k]) if np.sum(idx == k) >= 10 else np.nan
                for k in range(len(centre))])
ax.plot(centre, med, "o", color="white", mec="black", label="mock: binned median")
x = np.linspace(8.5, 11.5, 200)
ax.plot(x, -1.492 + 1.847 * x - 0.08026 * x ** 2, color="tab:cyan", lw=2.5,
        label="Tremonti et al. (2004)")
ax.set_xlim(8.5, 11.5)
ax.set_ylim(8.2, 9.4)
ax.set_xlabel(r"$\log\,M_\star/M_\odot$")
ax.set_ylabel(r"$12+\log({\rm O/H})$  (oh_p50)")
ax.set_title(f"Mass-metallicity relation ({len(sf)} star-forming galaxies, "
             fr"$\sigma$ = {oh.std():.2f} dex)")
ax.legend(loc="lower right")

# %%
# The BPT diagram
# ---------------
# ``select("bpt_lines")`` keeps galaxies with S/N > 3 in all four lines and
# adds their log fluxes.  Star-forming galaxies follow a sequence below the
# Kauffmann et al. (2003) curve, from metal-poor (upper left) to metal-rich;
# AGN in massive, bulge-dominated hosts lie above the Kewley et al. (2001)
# maximum-starburst line, and AGN mixed with star formation give the
# composites between the two.

bpt = sample.select("bpt_lines")
n2 = np.asarray(bpt.catalog["log_N2"]) - np.asarray(bpt.catalog["log_Ha"])
o3 = np.asarray(bpt.catalog["log_O3"]) - np.asarray(bpt.catalog["log_Hb"])


def kauffmann03(x):
    """Kauffmann et al. (2003) demarcation (defined for x < 0.05)."""
    return 0.61 / (x - 0.05) + 1.3


def kewley01(x):
    """Kewley et al. (2001) maximum-starburst line (defined for x < 0.47)."""
    return 0.61 / (x - 0.47) + 1.19


fig, ax = plt.subplots(figsize=(7, 5.5))
hb = ax.hexbin(n2, o3, gridsize=45, extent=(-1.6, 0.6, -1.3, 1.3), mincnt=1,
               cmap=cmr.arctic_r, bins="log")
fig.colorbar(hb, ax=ax, label="galaxies per cell")
xk = np.linspace(-1.6, 0.0, 200)
ax.plot(xk, kauffmann03(xk), "k--", lw=2, label="Kauffmann et al. (2003)")
xw = np.linspace(-1.6, 0.4, 200)
ax.plot(xw, kewley01(xw), "k-", lw=2, label="Kewley et al. (2001)")
ax.text(-1.3, -0.9, "star-forming", fontsize=12)
ax.text(-0.25, -1.1, "composite", fontsize=12)
ax.text(0.1, 0.9, "AGN", fontsize=12)
ax.set_xlim(-1.6, 0.6)
ax.set_ylim(-1.3, 1.3)
ax.set_xlabel(r"$\log\,[{\rm NII}]\,6584/{\rm H}\alpha$")
ax.set_ylabel(r"$\log\,[{\rm OIII}]\,5007/{\rm H}\beta$")
ax.set_title(f"BPT diagram ({len(bpt)} galaxies with S/N > 3 in all four lines)")
ax.legend(loc="lower left")

plt.show()
