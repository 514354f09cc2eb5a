"""mestudio.nets"""
