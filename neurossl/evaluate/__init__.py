"""neurossl.evaluate"""
