"""Units of the SkyServer/MPA-JHU catalog columns: one source for every data path.

The retriever, the folder loader and the mock all give these columns the same
astropy units.
"""

LINE_FLUX_UNIT = "1e-17 erg / (s cm2)"

#: column name -> astropy unit string
COLUMN_UNITS = {
    "ra": "deg",
    "dec": "deg",
    "petroMag_r": "mag",
    "petroR90_r": "arcsec",
    "petroR50_r": "arcsec",
    "lgm_tot_p50": "dex(solMass)",
    "sfr_tot_p50": "dex(solMass / yr)",
    "oh_p50": "dex",
}
for _line in ("h_alpha", "h_beta", "oiii_5007", "nii_6584"):
    COLUMN_UNITS[f"{_line}_flux"] = LINE_FLUX_UNIT
    COLUMN_UNITS[f"{_line}_flux_err"] = LINE_FLUX_UNIT
del _line
