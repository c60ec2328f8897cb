"""neurossl.analysis"""
