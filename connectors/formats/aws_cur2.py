FORMATS: list = []
