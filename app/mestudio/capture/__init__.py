"""mestudio.capture"""
