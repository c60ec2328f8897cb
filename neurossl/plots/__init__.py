"""neurossl.plots"""
